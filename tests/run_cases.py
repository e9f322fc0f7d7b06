"""Small runs shared by the command-line and run-directory tests: a tiny Bose-Hubbard config
as TOML text, and metrics.jsonl rows without the one field allowed to differ (wall time)."""

import json

from nqs_cli.config import to_toml


def tiny_run_config(name: str, seed: int, U: float = 3.0, n_iter: int = 30, checkpoint_every: int = 5, observables: list[str] | None = None) -> str:
    """A 4-site Bose-Hubbard chain that trains in seconds (4 chains, 64 samples); no observables
    unless ``observables`` names them (their measurement compiles more)."""
    return to_toml({
        "name": name,
        "seed": seed,
        "lattice": {"length": 4},
        "hilbert": {"kind": "fock", "n_max": 2, "n_particles": 4},
        "hamiltonian": {"kind": "bose-hubbard", "U": U},
        "sampler": {"n_chains": 4, "n_samples": 64},
        "train": {"n_iter": n_iter, "checkpoint_every": checkpoint_every},
        "observables": {"names": observables or []},
    })


def metrics_rows(run_dir) -> list[dict]:
    """metrics.jsonl rows without the wall-clock time (the only field allowed to differ)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_s")
    return rows


def trained_run(root, config_text: str, *args: str):
    """(config path, run directory) of ``config_text`` trained with `nqs train` under ``root``."""
    from typer.testing import CliRunner

    from nqs_cli.app.cli import app

    cfg = root / "c.toml"
    cfg.write_text(config_text)
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(root / "run"), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return cfg, root / "run"
