"""The config contract: every shipped config validates; malformed ones exit 2 with the key named."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nqs_cli import config
from nqs_cli.app.cli import app

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.toml"))
runner = CliRunner()

BH = """
[lattice]
graph = "chain"
length = 4
[hilbert]
kind = "fock"
n_max = 2
n_particles = 4
[hamiltonian]
kind = "bose-hubbard"
U = 4.0
"""

TRAP = """
[space]
n_particles = 3
[hamiltonian]
kind = "continuous"
trap_omega = 1.0
"""


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "config OK" in result.output


def test_shipped_configs_are_present():
    names = {p.name for p in CONFIGS}
    assert {"bose_hubbard_1d.toml", "spin1_heisenberg.toml", "harmonic_trap.toml", "trap_interacting.toml", "periodic_bosons.toml"} <= names


# (config text, extra CLI args, text that must appear in the one-line message)
MALFORMED = [
    (BH + "[sampler]\nn_chans = 4\n", [], 'sampler.n_chans: unknown key (did you mean "n_chains"?)'),
    (BH + "[samplr]\nn_chains = 4\n", [], 'samplr: unknown key (did you mean "sampler"?)'),
    (BH + "[sampler]\nn_chains = -3\n", [], "sampler.n_chains: expected >= 1, got -3"),
    (BH + "[sampler]\nn_chains = 2.5\n", [], "sampler.n_chains: expected an integer"),
    (BH + "[sampler]\nn_chains = true\n", [], "sampler.n_chains: expected an integer, got true"),
    (BH + "[sampler]\nkind = \"metropolis-local\"\n", [], "sampler.kind"),
    (BH.replace("n_max = 2", "n_max = 3") + "[sampler]\nkind = \"metropolis-exchange\"\n", [], "metropolis-hamiltonian"),
    (BH.replace("n_max = 2", "n_max = 0"), [], "hilbert.n_max: expected >= 1, got 0"),
    (BH.replace("n_particles = 4", "n_particles = 9"), [], "hilbert.n_particles"),
    (BH.replace('n_max = 2\n', ""), [], "hilbert.n_max: required"),
    (BH + "[optimizer.sr]\ndiag_shift = 0.0\n", [], "optimizer.sr.diag_shift: expected > 0"),
    (BH + "[optimizer.sr]\nsolver = \"lu\"\n", [], "optimizer.sr.solver"),
    (BH + "[optimizer]\nkind = \"sgd\"\nlearning_rate = \"fast\"\n", [], "optimizer.learning_rate: expected a number"),
    (BH + "[model]\nkind = \"deepsets\"\n", [], "model.kind"),
    (TRAP + "[model]\nkind = \"rbm-multival\"\n", [], "model.kind"),
    (TRAP + "[model]\nkind = \"deepsets-reldist\"\n", [], "periodic box"),
    (TRAP.replace("trap_omega = 1.0", "trap_omega = 0.0"), [], "hamiltonian.trap_omega"),
    (BH + "[space]\nn_particles = 2\n", [], "space"),
    (BH.replace('kind = "bose-hubbard"', 'kind = "heisenberg"'), [], "hamiltonian.U: not a key of kind"),
    ("[lattice]\nlength = 4\n[hilbert]\nkind = \"spin\"\n[hamiltonian]\nkind = \"bose-hubbard\"\n", [], "hilbert.kind"),
    (BH + "[train]\non_nonfinite = \"ignore\"\n", [], "train.on_nonfinite"),
    (BH + "[hamiltonian]\nU = 1\n", [], "invalid TOML"),  # duplicate table
    (BH + "[sampler\n", [], "invalid TOML"),
    (BH.replace("U = 4.0", "U = 4.0\nbeta = 0.5"), [], "hamiltonian.beta"),
    (BH, ["--set", "sampler.n_chains=0"], "sampler.n_chains: expected >= 1, got 0"),
    (BH, ["--set", "sampler.n_chain=4"], 'sampler.n_chain: unknown key (did you mean "n_chains"?)'),
    (BH, ["--set", "novalue"], "expected KEY=VALUE"),
    (BH + "seed = -1\n", [], "seed"),
    (BH.replace('graph = "chain"', 'graph = "hexagonal"'), [], "lattice.graph"),
    (BH + "[lattice]\n", [], "invalid TOML"),
    (
        "[lattice]\nlength = 3\n[hilbert]\nkind = \"spin\"\ns = 1\n[hamiltonian]\nkind = \"heisenberg\"\nsign_rule = true\n",
        [],
        "hamiltonian.sign_rule",
    ),
    ("[lattice]\nlength = 4\n[hilbert]\nkind = \"spin\"\ns = 0.7\n[hamiltonian]\nkind = \"heisenberg\"\n", [], "hilbert.s"),
    ("[lattice]\nlength = 4\n[hilbert]\nkind = \"spin\"\ns = 1\ntotal_sz = 0.5\n[hamiltonian]\nkind = \"heisenberg\"\n", [], "hilbert.total_sz"),
    ("[hamiltonian]\nkind = \"bose-hubbard\"\n", [], "missing system"),
    (TRAP + "[hamiltonian.pair]\nkind = \"gaussian\"\nepsilon = 1.0\n", [], "hamiltonian.pair.epsilon"),
    (TRAP + "[sampler]\nsigma = -1.0\n", [], "sampler.sigma"),
    (BH + "[model]\nparam_dtype = \"complex64\"\n", [], 'model.param_dtype: "complex64" contradicts dtype = "float64"'),
    ("dtype = \"float32\"\n" + BH + "[model]\nparam_dtype = \"complex128\"\n", [], 'model.param_dtype: "complex128" contradicts dtype = "float32"'),
    (TRAP + "[model]\nparam_dtype = \"complex128\"\n", [], 'model.param_dtype: "complex128" (complex parameters) is supported for model.kind = "rbm-multival" only'),
    (BH + "[model]\nparam_dtype = \"complex\"\n", [], 'model.param_dtype: expected one of "float64", "float32", "complex128", "complex64"'),
]


@pytest.mark.parametrize("text, args, expected", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_config_exits_2_with_key(tmp_path, text, args, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["validate", str(path), *args])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message
    assert str(path) in message
    assert expected in message


def test_missing_config_file_exits_2(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "no such config file" in result.output


def test_overrides_parse_toml_values_and_bare_strings(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BH)
    cfg = config.load(path, ["sampler.n_chains=8", "optimizer.learning_rate=0.05", "sampler.kind=metropolis-hamiltonian", "lattice.pbc=false"])
    assert cfg.sampler.n_chains == 8
    assert cfg.optimizer.learning_rate == 0.05
    assert cfg.sampler.kind == "metropolis-hamiltonian"
    assert cfg.lattice.pbc is False
    assert "sampler.n_chains" in cfg.explicit and "sampler.sweep_size" not in cfg.explicit


def test_n_samples_rounding_is_stated(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BH + "[sampler]\nn_chains = 16\nn_samples = 1000\n")
    cfg = config.load(path)
    assert cfg.sampler.n_samples == 1008
    assert any("rounded up from 1000 to 1008" in note for note in cfg.notes)
    result = runner.invoke(app, ["validate", str(path)])
    assert "rounded up from 1000 to 1008" in result.output


def test_defaults_for_a_minimal_lattice_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BH)
    cfg = config.load(path)
    assert cfg.name == "c"
    assert cfg.model.kind == "rbm-multival"
    assert cfg.sampler.kind == "metropolis-hamiltonian"
    assert cfg.sampler.sweep_size == 4
    assert cfg.optimizer.sr is not None
    resolved = config.to_dict(cfg)
    assert resolved["hamiltonian"]["U"] == 4.0 and "beta" not in resolved["hamiltonian"]


def test_sr_can_be_switched_off(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BH + "[optimizer]\nsr = false\n")
    assert config.load(path).optimizer.sr is None


@pytest.mark.parametrize("dtype, param_dtype", [("float64", "complex128"), ("float32", "complex64")])
def test_complex_parameters_validate_and_build(tmp_path, dtype, param_dtype):
    import jax.numpy as jnp

    from nqs_cli.setup.models import param_dtype as built_dtype

    path = tmp_path / "c.toml"
    path.write_text(f'dtype = "{dtype}"\n' + BH + f'[model]\nparam_dtype = "{param_dtype}"\n')
    assert built_dtype(config.load(path)) == getattr(jnp, param_dtype)
    if dtype == "float64":  # `nqs validate` of a float32 config would switch this process's JAX to 32 bits
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
        assert param_dtype in result.output
