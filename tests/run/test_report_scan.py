"""`nqs report` on a scan: the differing config key found (or --x), rows sorted by it, scalar
observables as columns, and the scan plot."""

import json

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.run.report import scan_key


def fake_run(root, U: float, fraction: float):
    run = root / f"scan-{U:g}"
    run.mkdir()
    resolved = {"name": f"scan-{U:g}", "lattice": {"graph": "chain", "length": 8}, "hilbert": {"kind": "fock", "n_max": 3},
                "hamiltonian": {"kind": "bose-hubbard", "U": U}, "model": {"kind": "rbm-multival"}, "train": {"n_iter": 20, "init_from": str(root)}}
    (run / "resolved.json").write_text(json.dumps(resolved))
    rows = [{"step": t, "energy": -5 + 4 / t, "energy_error": 0.1 / t, "variance": 1 / t, "r_hat": 1.0, "acceptance": 0.5} for t in range(1, 21)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "result.json").write_text(json.dumps({"status": "completed", "energy": -4.8, "energy_error": 0.01, "exact_energy": -5.0,
                                                 "seconds_per_iteration": 0.1}))
    scalars = {"condensate_fraction": {"value": fraction, "error": 0.01}, "number_fluctuation": {"value": fraction / 2, "error": 0.01}}
    (run / "observables.json").write_text(json.dumps({"scalars": scalars}))
    return run


def test_report_sorts_a_scan_by_its_key_and_shows_the_observables(tmp_path):
    runs = [fake_run(tmp_path, U, f) for U, f in ((8.0, 0.2), (2.0, 0.9), (4.0, 0.6))]
    assert scan_key(runs) == "hamiltonian.U"  # names and init_from differ too, but are no scan axis
    assert scan_key(runs[:1]) is None
    result = CliRunner().invoke(app, ["report", *map(str, runs), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["scan"]["hamiltonian.U"] for r in rows] == [2.0, 4.0, 8.0]
    assert [r["observables"]["scalars"]["condensate_fraction"]["value"] for r in rows] == [0.9, 0.6, 0.2]
    table = CliRunner().invoke(app, ["report", *map(str, runs), "--x", "hamiltonian.U"]).output
    assert "hamiltonian.U" in table and "condensate_fraction" in table and "0.900 ± 0.010" in table
    bad = CliRunner().invoke(app, ["report", *map(str, runs), "--x", "hamiltonian.Q"])
    assert bad.exit_code == 2 and "--x hamiltonian.Q" in bad.output


def test_scan_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [fake_run(tmp_path, U, f) for U, f in ((2.0, 0.9), (6.0, 0.3))]
    out = tmp_path / "scan.png"
    result = CliRunner().invoke(app, ["report", *map(str, runs), "--x", "hamiltonian.U", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
