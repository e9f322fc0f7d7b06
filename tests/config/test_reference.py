"""The config reference is generated from the schema: docs/config.md matches it, every key is
documented, and `nqs keys` / `nqs validate` show it."""

import dataclasses
from pathlib import Path

from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.config import reference
from nqs_cli.config.schema import SECTIONS, SUBSECTIONS, TOP_KEYS

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def schema_keys():
    keys = list(TOP_KEYS)
    for name, cls in SECTIONS.items():
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    for (a, b), cls in SUBSECTIONS.items():
        keys += [f"{a}.{b}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def test_docs_config_md_is_the_generated_reference():
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == reference.markdown(), "docs/config.md is stale: regenerate it with `nqs keys > docs/config.md`"


def test_every_schema_key_has_a_row_with_default_and_meaning():
    text = reference.markdown()
    docs = {d.key: d for _, rows in reference.sections() for d in rows}
    for key in schema_keys():
        assert f"| `{key}` |" in text, key
        assert docs[key].meaning, f"{key} has no meaning"
        assert docs[key].default, f"{key} has no default"
    assert sorted(docs) == sorted(schema_keys())


def test_hamiltonians_are_stated_as_formulas():
    text = reference.markdown()
    for formula in ("U/2 Σ_i n_i (n_i − 1)", "[V_trap |r_i − center|² + ε_i] n_i", "J Σ_⟨ij⟩ [S^x_i S^x_j + S^y_i S^y_j + Δ S^z_i S^z_j + β (S_i·S_j)²]",
                    "J2 Σ_⟨⟨ij⟩⟩", "D Σ_i (S^z_i)² − h Σ_i S^z_i", "−1/(2m) Σ_i ∇_i²"):
        assert formula in text


def test_keys_command_prints_a_section_a_key_and_refuses_unknown_names():
    res = runner.invoke(app, ["keys", "sampler"])
    assert res.exit_code == 0 and "`sampler.n_chains`" in res.output and "`model.alpha`" not in res.output
    res = runner.invoke(app, ["keys", "model.alpha"])
    assert res.exit_code == 0 and "hidden units" in res.output
    res = runner.invoke(app, ["keys", "sampler.nope"])
    assert res.exit_code == 2 and "unknown section or key" in res.output


def test_validate_shows_automatic_values_with_their_reason(tmp_path):
    cfg = tmp_path / "heis.toml"
    cfg.write_text('[lattice]\nlength = 6\n[hilbert]\nkind = "spin"\ns = 0.5\n[hamiltonian]\nkind = "heisenberg"\n')
    res = runner.invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "hamiltonian.sign_rule" in ln)
    assert "true" in line and "bipartite lattice, J > 0" in line
    res = runner.invoke(app, ["validate", str(cfg), "--set", "lattice.length=5"])
    line = next(ln for ln in res.output.splitlines() if "hamiltonian.sign_rule" in ln)
    assert "false" in line and "not bipartite" in line
    line = next(ln for ln in res.output.splitlines() if "sampler.sweep_size" in ln)
    assert "5" in line and "auto" in line
