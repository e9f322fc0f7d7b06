"""The lattice and Hamiltonian-term keys: accepted forms, resolved values, round trips, and the
contradictions that exit 2 with one line naming the key."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nqs_cli import config
from nqs_cli.app.cli import app
from nqs_cli.config.export import to_toml
from nqs_cli.run import run_dir as rd
from nqs_cli.setup.lattice import automatic_sign_rule, build_lattice, classical_spiral

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()

SPIN = '[lattice]\ngraph = "chain"\nlength = 6\n[hilbert]\nkind = "spin"\ns = 0.5\ntotal_sz = 0\n[hamiltonian]\nkind = "heisenberg"\n'
BOSE = '[lattice]\ngraph = "chain"\nlength = 5\npbc = false\n[hilbert]\nkind = "fock"\nn_max = 2\nn_particles = 3\n[hamiltonian]\nkind = "bose-hubbard"\n'
CUSTOM = '[lattice]\ngraph = "custom"\nlength = 4\nedges = [[0, 1], [1, 2, 1], [2, 3], [3, 0, 1]]\n'


def _round_trips(text: str) -> config.Config:
    """The config of ``text``; its resolved dict (resolved.json) and its effective TOML
    (config.toml) read back to the same config."""
    raw = tomllib.loads(text)
    cfg = config.from_dict(tomllib.loads(text))
    assert config.from_dict(json.loads(json.dumps(config.to_dict(cfg)))) == cfg
    assert config.from_dict(tomllib.loads(to_toml(raw))) == cfg
    return cfg


def _validate(tmp_path, text, *args):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return runner.invoke(app, ["validate", str(path), *args]), path


@pytest.mark.parametrize(
    "text, n_sites",
    [
        (SPIN.replace("length = 6", 'length = [3, 2]').replace('"chain"', '"square"'), 6),
        (SPIN.replace("length = 6", "length = [4, 2]\npbc = [true, false]").replace('"chain"', '"square"'), 8),
        (SPIN.replace("length = 6", "length = [3, 2]").replace('"chain"', '"honeycomb"'), 12),
        (SPIN.replace("length = 6", "length = 2").replace('"chain"', '"kagome"'), 12),
        (SPIN.replace('graph = "chain"\nlength = 6\n', 'graph = "hypercube"\ndims = 3\nlength = [2, 2, 1]\n'), 4),
    ],
)
def test_per_axis_lengths_and_new_graphs(text, n_sites):
    assert _round_trips(text).n_sites == n_sites


def test_custom_graph_with_coloured_couplings_round_trips():
    text = CUSTOM + '[hilbert]\nkind = "spin"\ns = 1\n[hamiltonian]\nkind = "heisenberg"\nJ = [1.0, 0.5]\nD = 0.2\n'
    cfg = _round_trips(text)
    assert cfg.lattice.edges == ((0, 1), (1, 2, 1), (2, 3), (3, 0, 1)) and cfg.hamiltonian.J == (1.0, 0.5)
    assert config.to_dict(cfg)["lattice"]["edges"] == [[0, 1], [1, 2, 1], [2, 3], [3, 0, 1]]


def test_trap_table_round_trips_and_old_run_directories_keep_their_hash():
    cfg = _round_trips(BOSE + "trap = {V = 0.5, center = 2}\nonsite = [0.1, 0.0, -0.1, 0.0, 0.2]\n")
    assert cfg.hamiltonian.trap.V == 0.5 and cfg.hamiltonian.trap.center == 2.0
    data = config.to_dict(cfg)
    # a resolved config written before these keys existed has the same problem hash
    plain = config.to_dict(config.from_dict(tomllib.loads(BOSE)))
    old = {**plain, "hamiltonian": {k: v for k, v in plain["hamiltonian"].items() if k not in ("trap", "onsite")}}
    assert rd.problem_hash(old) == rd.problem_hash(plain) != rd.problem_hash(data)
    assert rd.config_diff(old, plain) == []
    assert [k for k, *_ in rd.config_diff(old, data)] == ["hamiltonian.onsite", "hamiltonian.trap.V", "hamiltonian.trap.center"]


def test_run_directories_from_before_the_symmetry_keys_keep_their_hash():
    plain = config.to_dict(config.from_dict(tomllib.loads(SPIN)))
    added = ("symmetry", "features", "spiral_phase")
    assert all(plain["model"][k] is None for k in added)
    old = {**plain, "model": {k: v for k, v in plain["model"].items() if k not in added}}
    assert rd.problem_hash(old) == rd.problem_hash(plain)
    for key, value in (("symmetry", "translation"), ("spiral_phase", True)):
        chosen = {**plain, "model": {**plain["model"], key: value}}
        assert rd.problem_hash(chosen) != rd.problem_hash(plain)


def test_validate_prints_resolved_terms_sign_rule_and_field_note(tmp_path):
    result, _ = _validate(tmp_path, SPIN + "delta = 2.0\nh = 0.3\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "hamiltonian.delta" in out and "hamiltonian.sign_rule" in out and "auto (bipartite lattice, J > 0)" in out
    assert "note: hamiltonian.h: with hilbert.total_sz = 0 fixed" in out
    frustrated, _ = _validate(tmp_path, SPIN + "J2 = 0.5\n")
    assert "auto (J2 != 0 frustrates the exchange)" in frustrated.output
    triangular, _ = _validate(tmp_path, SPIN.replace('"chain"', '"triangular"').replace("length = 6", "length = [3, 2]"))
    assert "auto (the lattice is not bipartite)" in triangular.output
    trap, _ = _validate(tmp_path, BOSE + "[hamiltonian.trap]\nV = 1.0\n")
    assert trap.exit_code == 0 and "[2.0]" in trap.output and "auto (the mean site position)" in trap.output


def test_complex_parameters_keep_marshall_as_a_reference_sign_with_j2(tmp_path):
    complex_ = SPIN + "J2 = 0.5\n[model]\nparam_dtype = \"complex128\"\n"
    result, _ = _validate(tmp_path, complex_)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "a reference sign" in out
    assert '"translation"' in out and "auto (complex parameters with a sign reference on a periodic lattice)" in out
    explicit, _ = _validate(tmp_path, complex_.replace("J2 = 0.5\n", "J2 = 0.5\nsign_rule = true\n"))
    assert explicit.exit_code == 0, explicit.output
    off, _ = _validate(tmp_path, complex_.replace("J2 = 0.5\n", "J2 = 0.5\nsign_rule = false\n"))
    assert '"none"' in off.output and "auto (no sign reference (hamiltonian.sign_rule off, no model.spiral_phase))" in off.output
    open_chain, _ = _validate(tmp_path, complex_.replace("length = 6\n", "length = 6\npbc = false\n"))
    assert "auto (the lattice is not periodic along every axis)" in open_chain.output
    square = '[lattice]\ngraph = "square"\nlength = 4\n[hilbert]\nkind = "spin"\ns = 0.5\ntotal_sz = 0\n[hamiltonian]\nkind = "heisenberg"\n'
    for j2, order in (("0.3", "Néel (Q = π on every axis)"), ("0.5", "Néel (Q = π on every axis)"), ("0.7", "stripes (Q = π along axis 0, 0 along 1)")):
        cfg = config.from_dict(tomllib.loads(square + f"J2 = {j2}\n[model]\nparam_dtype = \"complex128\"\n"))
        on, why = automatic_sign_rule(cfg)
        assert on and f"a reference sign ({order}, the classical order)" in why
    real, _ = _validate(tmp_path, SPIN + "J2 = 0.5\n")
    assert "auto (real parameters)" in real.output


TRIANGULAR = SPIN.replace('"chain"', '"triangular"').replace("length = 6", "length = [6, 3]")
COMPLEX = '[model]\nparam_dtype = "complex128"\n'


def test_the_spiral_phase_is_the_classical_order_where_the_cluster_admits_it(tmp_path):
    """The 120° order on triangular tori whose lengths are multiples of 3 (every bond at 120°,
    E = −3N/2 · S²); none on a cluster that frustrates it, on bipartite, non-Bravais or open
    lattices; validate resolves it (and the symmetric model with it) and says why."""
    for lengths in ("[6, 3]", "[3, 6]", "[6, 6]"):
        cfg = config.from_dict(tomllib.loads(TRIANGULAR.replace("[6, 3]", lengths) + COMPLEX))
        lattice = build_lattice(cfg)
        phi, why = classical_spiral(cfg, lattice)
        assert "120° between neighbours" in why
        np.testing.assert_allclose(np.cos(phi[lattice.edges[:, 0]] - phi[lattice.edges[:, 1]]), -0.5, atol=1e-12)
    for text, reason in (
        (TRIANGULAR.replace("[6, 3]", "[4, 3]"), "the 4×3 cluster frustrates the classical order"),
        (TRIANGULAR + "J2 = 0.5\n", "the 6×3 cluster frustrates the classical order"),  # a collinear order beyond J2 = J/8: needs even lengths
        (TRIANGULAR.replace("length = [6, 3]", "length = [6, 3]\npbc = [true, false]"), "not periodic along every axis"),
        (SPIN, "the lattice is bipartite"),
        (TRIANGULAR.replace('"triangular"', '"kagome"').replace("[6, 3]", "[2, 2]"), "not a Bravais lattice"),
        (TRIANGULAR + "J = -1.0\n", "J <= 0"),
    ):
        cfg = config.from_dict(tomllib.loads(text + COMPLEX))
        phi, why = classical_spiral(cfg, build_lattice(cfg))
        assert phi is None and reason in why, why
    result, _ = _validate(tmp_path, TRIANGULAR + COMPLEX)
    assert result.exit_code == 0, result.output
    assert "auto (the classical spiral Q = 2π·(1/3, 2/3), 120° between neighbours)" in result.output
    assert "auto (complex parameters with a reference phase (model.spiral_phase) on a periodic lattice)" in result.output
    frustrated, _ = _validate(tmp_path, TRIANGULAR.replace("[6, 3]", "[4, 3]") + COMPLEX)
    assert '"none"' in frustrated.output and "frustrates the classical order" in frustrated.output
    real, _ = _validate(tmp_path, TRIANGULAR)
    assert "auto (real parameters)" in real.output


@pytest.mark.parametrize(
    "text, args, expected",
    [
        (SPIN + "J2 = 0.5\nsign_rule = true\n", [], "hamiltonian.sign_rule: Marshall's sign rule does not hold with J2 != 0"),
        (SPIN.replace('"chain"', '"triangular"').replace("length = 6", "length = [3, 2]") + "sign_rule = true\n", [], "hamiltonian.sign_rule: Marshall's sign rule needs a bipartite"),
        (BOSE + "h = 0.5\n", [], 'hamiltonian.h: not a key of kind "bose-hubbard"'),
        (BOSE + "D = 0.5\n", [], 'hamiltonian.D: not a key of kind "bose-hubbard"'),
        (SPIN + "trap = {V = 1.0}\n", [], 'hamiltonian.trap: not a key of kind "heisenberg"'),
        (CUSTOM.replace("[3, 0, 1]", "[3, 4, 1]") + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.edges: edge [3, 4, 1] names site 4, but the graph has 4 sites"),
        (CUSTOM.replace("[3, 0, 1]", "[3, 3]") + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.edges: edge [3, 3] joins site 3 to itself"),
        (CUSTOM.replace("[3, 0, 1]", "[1, 0]") + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.edges: edge [1, 0] repeats the bond [0, 1]"),
        (CUSTOM.replace("[0, 1], ", "[0, -1], ") + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.edges: expected a list of [i, j]"),
        (CUSTOM + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\nJ = [1.0, 2.0, 3.0]\n', [], "hamiltonian.J: expected one coupling per bond colour (2"),
        (CUSTOM + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\nJ2 = 0.1\n', [], "hamiltonian.J2: a custom graph has no next-nearest bonds"),
        (CUSTOM + "pbc = false\n" + '[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.pbc: a custom graph has no boundary"),
        ('[lattice]\ngraph = "custom"\nlength = 4\n[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', [], "lattice.edges: required"),
        (SPIN + "", ["--set", "lattice.edges=[[0, 1]]"], 'lattice.edges: an edge list needs graph = "custom"'),
        (BOSE + "trap = {V = 1.0, center = 7}\n", [], "hamiltonian.trap.center: [7.0] is off the lattice, whose sites span [0, 4]"),
        (BOSE + "trap = {V = 1.0, center = [2, 0]}\n", [], "hamiltonian.trap.center: expected one coordinate per dimension (1)"),
        (BOSE + "onsite = [1.0, 2.0]\n", [], "hamiltonian.onsite: expected one on-site energy per site (5)"),
        (SPIN, ["--set", "lattice.length=[4, 2]"], 'lattice.length: expected one value per dimension (1 for graph "chain"), got a list of 2'),
        (SPIN.replace('"chain"', '"square"').replace("length = 6", "length = 4"), ["--set", "lattice.pbc=[true, false, true]"], "lattice.pbc: expected one value per dimension (2"),
        (SPIN.replace('"chain"', '"square"'), ["--set", "lattice.length=[4, 0]"], "lattice.length: expected >= 1"),
        (SPIN, ["--set", "lattice.pbc=[1, 0]"], "lattice.pbc: expected true or false or a list of true/false"),
        (TRIANGULAR.replace("[6, 3]", "[4, 3]") + COMPLEX + "spiral_phase = true\n", [], "model.spiral_phase: no classical spiral to take the phase from: the 4×3 cluster frustrates"),
        (TRIANGULAR + "[model]\nspiral_phase = true\n", [], "model.spiral_phase: a phase needs complex parameters"),
        (TRIANGULAR + COMPLEX + 'spiral_phase = true\nsymmetry = "none"\n', [], "model.spiral_phase: the phase is held by the translation-symmetric RBM"),
        (SPIN + COMPLEX + "spiral_phase = true\n", [], "model.spiral_phase: no classical spiral to take the phase from: the lattice is bipartite"),
    ],
)
def test_contradictions_exit_2_with_one_line(tmp_path, text, args, expected):
    result, path = _validate(tmp_path, text, *args)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and str(path) in message, message
    assert expected in message, message


def test_exact_on_new_lattices_and_terms(tmp_path):
    """`nqs exact` gives the known numbers: the Majumdar–Ghosh chain (−3N/8), a triangle (−3/4),
    and the 4 × 2 ladder's ground state through per-axis keys."""
    for text, energy in (
        (SPIN.replace("length = 6", "length = 8") + "J2 = 0.5\n", -3.0),
        ('[lattice]\ngraph = "custom"\nlength = 3\nedges = [[0, 1], [1, 2], [2, 0]]\n[hilbert]\nkind = "spin"\n[hamiltonian]\nkind = "heisenberg"\n', -0.75),
    ):
        path = tmp_path / "e.toml"
        path.write_text(text)
        result = runner.invoke(app, ["exact", str(path)])
        assert result.exit_code == 0, result.output
        assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(energy, abs=1e-9)
