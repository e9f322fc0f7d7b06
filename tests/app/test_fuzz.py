"""Seeded fuzzing of the config contract: mutations of every shipped config (shapes, types,
sizes, extremes, encodings) either validate or exit 2 with one line; never a traceback."""

import random
import resource
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
runner = CliRunner()

VALUES = [0, 1, -1, 2, 3, 7, 0.5, -0.5, 1e-300, 1e308, -1e308, 2**63, -(2**63), 10**12, 10**6, 0.01, 1.5, 4096,
          "", "x", "x" * 300, "chain", "fock", "gaussian", "auto", True, False, [], [1, 2], [0.0], [-1], {}, {"kind": "x"}, "nan", "inf"]


def _walk(table, prefix=()):
    for key, value in table.items():
        yield prefix + (key,), value
        if isinstance(value, dict):
            yield from _walk(value, prefix + (key,))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return {"nan": "nan", "inf": "inf"}.get(value, '"' + value + '"')
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def mutations(rng: random.Random, text: str, n: int):
    """``n`` (kind, args) mutations of one config: --set overrides or a rewritten file."""
    keys = [".".join(path) for path, _ in _walk(tomllib.loads(text))]
    for _ in range(n):
        roll = rng.random()
        if roll < 0.55:
            yield "set", [f"{rng.choice(keys)}={_toml(rng.choice(VALUES))}"]
        elif roll < 0.7:
            section = rng.choice([k for k in keys if "." not in k] + ["model", "sampler", "lattice", "space", "optimizer.sr"])
            yield "set", [f"{section}={_toml(rng.choice(VALUES))}"]
        elif roll < 0.8:
            yield "set", [f"{rng.choice(keys)}.{rng.choice(['bogus', 'kind', 'x'])}={_toml(rng.choice(VALUES))}"]
        elif roll < 0.9:
            cut = rng.randrange(len(text))
            yield "text", text[:cut] + rng.choice(["", "\n[[sampler]]\n", "\ufeff", "\x00", "]]", "\n[model]\nkind = 5\n"]) + text[cut:]
        else:
            data = bytearray(text.encode())
            data[rng.randrange(len(data))] = rng.randrange(256)
            yield "bytes", bytes(data)


def validate_argv(path: Path, text: str, kind: str, arg) -> list[str]:
    """`nqs validate` of one mutation of ``text``, written to ``path``."""
    argv = ["validate", str(path)]
    if kind == "set":
        path.write_text(text)
        argv += [a for s in arg for a in ("--set", s)]
    elif kind == "text":
        path.write_text(arg)
    else:
        path.write_bytes(arg)
    return argv


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_mutated_configs_validate_or_exit_2_with_one_line(config, tmp_path):
    rng = random.Random(f"fuzz-{config.stem}")
    text = config.read_text()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i, (kind, arg) in enumerate(mutations(rng, text, 150)):
        result = runner.invoke(app, validate_argv(tmp_path / f"m{i}.toml", text, kind, arg))
        where = f"{kind} {arg!r:.200}"
        assert result.exception is None or isinstance(result.exception, SystemExit), f"{where}: {result.exception!r}"
        assert result.exit_code in (0, 2), f"{where}: exit {result.exit_code}: {result.output}"
        if result.exit_code == 2:
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{where}: {result.output}"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 2048, f"validating mutations grew the process by {grown_mb:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_mutated_configs_that_validate_train_or_exit_with_one_line(config, tmp_path):
    """One iteration of `nqs train` on mutations that `validate` accepts: a clean run (0), or
    exit 1/2 with one line — never a traceback or an abort."""
    rng = random.Random(f"fuzz-train-{config.stem}")
    text = config.read_text()
    tried = 0
    for i, (kind, arg) in enumerate(mutations(rng, text, 400)):
        if kind != "set":
            continue
        path = tmp_path / f"m{i}.toml"
        path.write_text(text)
        sets = [a for s in arg for a in ("--set", s)] + ["--set", "train.final_samples=0", "--set", "sampler.n_samples=64"]
        if runner.invoke(app, ["validate", str(path), *sets]).exit_code != 0:
            continue
        result = runner.invoke(app, ["train", str(path), *sets, "--n-iter", "1", "--out", str(tmp_path / f"run{i}"), "--quiet"])
        where = f"{arg!r:.200}"
        assert result.exception is None or isinstance(result.exception, SystemExit), f"{where}: {result.exception!r}"
        assert result.exit_code in (0, 1, 2), f"{where}: exit {result.exit_code}: {result.output}"
        if result.exit_code:
            errors = [ln for ln in result.output.strip().splitlines() if ln.startswith("error: ")]
            assert len(errors) == 1, f"{where}: {result.output}"
        tried += 1
        if tried == 6:
            break
    assert tried >= 3
