"""Models: parity with NetKet 3.23 (stored fixture), symmetries, activation table."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_cli.models import (
    ACTIVATIONS,
    RBM,
    DeepSetMLP,
    DeepSetRelDistance,
    GaussianEnvelope,
    RBMMultiVal,
    activation_by_name,
)
from nqs_cli.models.activations import log_cosh, sum_log_cosh

FIXTURE = Path(__file__).parents[1] / "fixtures" / "netket_models.json"
TOL = 1e-12


@functools.cache
def _fixture() -> dict:
    return json.loads(FIXTURE.read_text())


CASES = {case["name"]: case for case in _fixture()["cases"]}


def _case(name: str) -> dict:
    return CASES[name]


def _names(model: str) -> list[str]:
    return [n for n, c in CASES.items() if c["model"] == model]


def _tuples(value):
    return tuple(value) if isinstance(value, list) else value


def _build(case: dict, flat: bool = False):
    """Our module with the fixture's fields, and the fixture's inputs for it."""
    fields = {k: _tuples(v) for k, v in case["fields"].items()}
    x = np.asarray(case["inputs"])  # numpy: no eager JAX ops (each would compile)
    if case["model"] == "RBM":
        return RBM(**fields), x
    if case["model"] == "RBMMultiVal":
        return RBMMultiVal(**fields), x
    for key in ("hidden_activation", "output_activation"):
        if key in fields:
            fields[key] = activation_by_name(fields[key])
    if case["model"] == "DeepSetMLP":
        if flat:
            fields["n_dims"] = x.shape[-1]
            x = np.reshape(x, (x.shape[0], -1))
        return DeepSetMLP(**fields), x
    if case["model"] == "DeepSetRelDistance":
        return DeepSetRelDistance(**fields), x
    raise AssertionError(case["model"])


def _netket_params(case: dict):
    return jax.tree_util.tree_map(
        jnp.asarray, case["params"], is_leaf=lambda v: isinstance(v, list)
    )


def _shapes(tree):
    return jax.tree_util.tree_map(jnp.shape, tree)


def _apply(model, variables, *args, method=None):
    """model.apply under jit: one compilation instead of one per eager op (much faster)."""
    return jax.jit(functools.partial(model.apply, method=method))(variables, *args)


def _netket_case(name: str, flat: bool = False):
    """(our model, the fixture's inputs, NetKet's variables, jitted model.apply), cached so
    that tests on the same case and input shape share one compilation."""
    return _netket_case_cached(name, bool(flat))


@functools.cache
def _netket_case_cached(name: str, flat: bool):
    case = _case(name)
    model, x = _build(case, flat)
    return model, x, {"params": _netket_params(case)}, jax.jit(model.apply)


def _init_shapes(model, key, x):
    """The parameter tree model.init would make, as ShapeDtypeStructs (nothing computed)."""
    return jax.eval_shape(model.init, key, x)["params"]


def _n_params(tree) -> int:
    return sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(tree))


@pytest.fixture(scope="module")
def key():
    return jax.random.key(0)


def test_fixture_is_from_netket_3_23():
    assert _fixture()["netket_version"] == "3.23.0"
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", list(CASES))
def test_param_tree_and_count_match_netket(name, key):
    case = _case(name)
    model, x = _build(case)
    ours = _init_shapes(model, key, x)
    theirs = _netket_params(case)
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    assert _shapes(ours) == _shapes(theirs)
    assert _n_params(ours) == case["n_params"]
    assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(ours))
    assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(theirs))


@pytest.mark.parametrize("name", list(CASES))
def test_log_psi_matches_netket(name):
    case = _case(name)
    _, x, variables, apply = _netket_case(name)
    log_psi = apply(variables, x)
    assert log_psi.shape == (x.shape[0],)
    assert log_psi.dtype == jnp.float64
    np.testing.assert_allclose(log_psi, case["log_psi"], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("name", _names("DeepSetMLP"))
def test_deepset_flat_input_matches_netket(name):
    case = _case(name)
    _, x, variables, apply = _netket_case(name, flat=True)
    assert x.ndim == 2
    log_psi = apply(variables, x)
    np.testing.assert_allclose(log_psi, case["log_psi"], rtol=TOL, atol=TOL)


def test_parameter_counts_of_reference_models(key):
    rbm = RBMMultiVal(n_classes=4, alpha=1)
    assert _n_params(_init_shapes(rbm, key, jnp.zeros(8, dtype=jnp.int32))) == 1088
    reldist = DeepSetRelDistance(
        extent=(6.0,), layers_phi=2, layers_rho=3, features_phi=16, features_rho=16
    )
    assert _n_params(_init_shapes(reldist, key, jnp.zeros(6))) == 868


@pytest.mark.parametrize("name", ["rbm_a1", *_names("RBMMultiVal")])
def test_rbm_single_configuration_equals_batch(name):
    _, x, variables, apply = _netket_case(name)
    batched = apply(variables, x)
    single = jnp.stack([apply(variables, xi) for xi in x[:3]])
    assert single.shape == (3,)
    np.testing.assert_allclose(single, batched[:3], rtol=1e-13, atol=1e-13)
    nested = apply(variables, jnp.reshape(x, (2, -1, x.shape[-1])))
    np.testing.assert_allclose(nested.ravel(), batched, rtol=1e-13, atol=1e-13)


def test_rbm_multival_one_hots_local_indices():
    _, x, variables, apply = _netket_case("rbm_multival_c4_l8_a1")
    p = jax.tree_util.tree_map(np.asarray, variables["params"]["RBM"])
    one_hot = (x[:, :, None] == np.arange(4)).reshape(x.shape[0], -1).astype(float)  # site-major
    hidden = one_hot @ p["Dense"]["kernel"] + p["Dense"]["bias"]
    expected = np.sum(np.log(np.cosh(hidden)), axis=-1) + one_hot @ p["visible_bias"]
    np.testing.assert_allclose(apply(variables, x), expected, rtol=1e-13)


COMPLEX_CASES = {case["name"]: case for case in _fixture().get("complex_cases", [])}


def _complex_tree(case: dict, prefix: str):
    real, imag = case[f"{prefix}_real"], case[f"{prefix}_imag"]
    is_leaf = lambda v: isinstance(v, list)  # noqa: E731
    return jax.tree_util.tree_map(lambda a, b: np.asarray(a) + 1j * np.asarray(b), real, imag, is_leaf=is_leaf)


def _complex_module(case: dict) -> RBMMultiVal:
    fields = case["fields"]
    return RBMMultiVal(n_classes=fields["n_classes"], alpha=fields["alpha"], param_dtype=jnp.complex128)


def test_complex_cases_present():
    assert len(COMPLEX_CASES) >= 2


@pytest.mark.parametrize("name", list(COMPLEX_CASES))
def test_complex_rbm_multival_initialisation_is_netkets(name):
    """Same parameter names and shapes, and with the same key the same complex initial
    values as NetKet's RBMMultiVal(param_dtype=complex128), to the last bit of the scaling
    (compiled here, eager there): normal(0.01) drawn as a complex normal (real and imaginary
    parts of standard deviation 0.01/√2)."""
    case = COMPLEX_CASES[name]
    model = _complex_module(case)
    x = np.asarray(case["inputs"])
    ours = jax.jit(model.init)(jax.random.key(case["seed"]), x)["params"]
    theirs = _complex_tree(case, "init")
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    assert all(a.dtype == jnp.complex128 for a in jax.tree_util.tree_leaves(ours))
    assert _n_params(ours) == case["n_params"]
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-15, atol=0)
    kernel = np.asarray(ours["RBM"]["Dense"]["kernel"])
    # 0.01/√2 per part: the sample standard deviation of n values is within ~4/√(2n) of it
    for part in (kernel.real, kernel.imag):
        assert abs(part.std() / (0.01 / np.sqrt(2)) - 1) < 4 / np.sqrt(2 * part.size)


@pytest.mark.parametrize("name", list(COMPLEX_CASES))
def test_complex_rbm_multival_log_psi_matches_netket(name):
    case = COMPLEX_CASES[name]
    model = _complex_module(case)
    log_psi = jax.jit(model.apply)({"params": _complex_tree(case, "params")}, np.asarray(case["inputs"]))
    assert log_psi.dtype == jnp.complex128
    expected = np.asarray(case["log_psi_real"]) + 1j * np.asarray(case["log_psi_imag"])
    np.testing.assert_allclose(log_psi, expected, rtol=TOL, atol=TOL)


def _permute_particles(x, perm, d):
    n = x.shape[-1] // d
    xs = np.reshape(x, (*x.shape[:-1], n, d))[..., perm, :]
    return np.reshape(xs, x.shape)


@pytest.mark.parametrize("name", _names("DeepSetMLP") + _names("DeepSetRelDistance"))
def test_deepsets_invariant_under_particle_permutation(name):
    model, x, variables, apply = _netket_case(name, flat=_case(name)["model"] == "DeepSetMLP")
    d = model.n_dims if isinstance(model, DeepSetMLP) else len(model.extent)
    perm = np.random.default_rng(0).permutation(x.shape[-1] // d)
    np.testing.assert_allclose(
        apply(variables, _permute_particles(x, perm, d)),
        apply(variables, x),
        rtol=TOL,
        atol=TOL,
    )


@pytest.mark.parametrize("name", _names("DeepSetRelDistance"))
def test_reldistance_periodic_in_every_component(name):
    model, x, variables, apply = _netket_case(name)
    reference = apply(variables, x)
    d = len(model.extent)
    n = x.shape[-1] // d
    for particle, component, n_boxes in [(0, 0, 1), (n - 1, d - 1, -2), (n // 2, 0, 3)]:
        shift = np.zeros(x.shape[-1])
        shift[particle * d + component] = n_boxes * model.extent[component]
        shifted = apply(variables, x + shift[None, :])
        np.testing.assert_allclose(shifted, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", _names("DeepSetMLP"))
def test_deepset_halves_reconstruct_log_psi(name):
    case = _case(name)
    model, x, variables, _ = _netket_case(name)  # x: (B, N, D)
    phi = jax.jit(functools.partial(model.apply, method="phi"))
    phis = np.stack([phi(variables, x_i) for x_i in x[0]])  # one particle at a time
    log_psi = _apply(model, variables, np.sum(phis, axis=0), method="rho")
    assert log_psi.shape == ()
    np.testing.assert_allclose(log_psi, case["log_psi"][0], rtol=TOL, atol=TOL)


def test_reldistance_halves_reconstruct_log_psi():
    case = _case("reldist_d1_l6_n6")  # no cusp
    model, x, variables, _ = _netket_case(case["name"])
    y = _apply(model, variables, x[0], method="pair_features")
    assert y.shape == (15, 1)
    s = np.sum(_apply(model, variables, y, method="phi"), axis=0)
    log_psi = _apply(model, variables, s, method="rho")
    np.testing.assert_allclose(log_psi, case["log_psi"][0], rtol=TOL, atol=TOL)


def test_reldistance_single_configuration_equals_batch():
    case = _case("reldist_d2_l5_n4_cusp5")
    _, x, variables, apply = _netket_case(case["name"])
    single = apply(variables, x[1])
    assert single.shape == ()
    np.testing.assert_allclose(single, case["log_psi"][1], rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(extent=(0.0,)), "periodic box"),
        (dict(extent=(jnp.inf,)), "periodic box"),
        (dict(features_phi=(16,)), "phi layers"),
        (dict(features_rho=(16, 2)), "last rho layer"),
    ],
)
def test_reldistance_rejects_bad_fields(kwargs, match, key):
    fields = dict(extent=(6.0,), layers_phi=2, layers_rho=2, features_phi=16, features_rho=16)
    model = DeepSetRelDistance(**{**fields, **kwargs})
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(model.init, key, jnp.zeros(6))


def test_gaussian_envelope(key):
    inner = DeepSetMLP(features_phi=(8,), features_rho=(8,), n_dims=2)
    model = GaussianEnvelope(inner=inner, n_dims=2)
    x = np.random.default_rng(0).normal(size=(5, 6))

    @jax.jit
    def init(key, x):
        variables = model.init(key, x)
        return variables, model.apply(variables, method="coefficient")

    @jax.jit
    def evaluate(params, x):
        full = model.apply({"params": params}, x)
        single = model.apply({"params": params}, x[0])
        return full, single, inner.apply({"params": params["inner"]}, x)

    variables, a_init = init(key, x)
    params = variables["params"]
    assert set(params) == {"inner", "log_a"}
    assert params["log_a"].shape == ()
    assert _shapes(params["inner"]) == _shapes(_init_shapes(inner, key, x))
    np.testing.assert_allclose(a_init, 0.5, rtol=1e-15)
    params = {**params, "log_a": jnp.asarray(-3.0)}
    full, single, inner_log_psi = evaluate(params, x)
    expected = inner_log_psi - np.exp(-3.0) * np.sum(x**2, axis=-1)
    np.testing.assert_allclose(full, expected, rtol=1e-14)
    np.testing.assert_allclose(single, full[0], rtol=1e-13)
    with pytest.raises(ValueError, match="N\\*2"):
        jax.eval_shape(model.apply, variables, jnp.zeros(5))


def test_deepset_rejects_flat_input_of_wrong_width(key):
    model = DeepSetMLP(features_phi=4, n_dims=3)
    with pytest.raises(ValueError, match="N\\*3"):
        jax.eval_shape(model.init, key, jnp.zeros(7))


def test_activation_table():
    names = "gelu tanh log_cosh relu silu softplus sigmoid none identity".split()
    assert set(names) <= set(ACTIVATIONS)
    x = np.linspace(-3.0, 3.0, 13)
    for name, fn in ACTIVATIONS.items():
        assert activation_by_name(name) is fn
    values = jax.jit(lambda x: {name: fn(x) for name, fn in ACTIVATIONS.items()})(x)
    assert all(v.shape == x.shape for v in values.values())
    np.testing.assert_array_equal(values["none"], x)
    np.testing.assert_allclose(values["tanh"], np.tanh(x), rtol=1e-15)
    # NetKet's default is jax.nn.gelu, whose default is the tanh approximation.
    c = np.sqrt(2.0 / np.pi)
    np.testing.assert_allclose(
        values["gelu"],
        0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**3))),
        rtol=1e-14,
        atol=1e-15,
    )


@pytest.mark.parametrize("name", ["GELU", "log-cosh", "", "elu"])
def test_unknown_activation_lists_valid_names(name):
    with pytest.raises(ValueError, match="valid names: .*log_cosh"):
        activation_by_name(name)


@pytest.mark.parametrize("width", [1, 32, 64, 100, 256])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_log_cosh_equals_the_elementwise_sum(width, dtype):
    """One log per group of 64 factors: the same sum as Σ log_cosh to rounding, also with
    padding (100), large |x| (factors → 1) and float32 (64 factors ≤ 2^64, no overflow)."""
    x = np.random.default_rng(width).normal(0.0, 3.0, (3, width))
    x[0, 0] = 800.0
    x = x.astype(dtype)
    got = jax.jit(sum_log_cosh)(x)
    want = np.sum(np.asarray(log_cosh(x.astype(np.float64))), axis=-1)
    eps = np.finfo(dtype).eps
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=8 * eps * np.sqrt(width), atol=0)
    # complex: the same sum up to a multiple of 2πi (a phase), also past the first branch cut
    for scale in (0.5, 3.0):
        z = (np.clip(x, -5, 5) + scale * 1j * x[::-1].clip(-5, 5)).astype(np.complex128)
        got, want = np.asarray(jax.jit(sum_log_cosh)(z)), np.sum(np.log(np.cosh(z)), axis=-1)
        np.testing.assert_allclose(got.real, want.real, rtol=1e-12)
        np.testing.assert_allclose(np.exp(1j * got.imag), np.exp(1j * want.imag), atol=1e-10)


def test_log_cosh_is_stable_and_exact():
    x = np.array([-800.0, -3.0, -0.5, -0.0, 0.0, 0.25, 2.0, 800.0])
    y = jax.jit(log_cosh)(x)
    assert jnp.all(jnp.isfinite(y))
    x_mid = np.asarray(x[1:-1])
    np.testing.assert_allclose(y[1:-1], np.log(np.cosh(x_mid)), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(y[np.array([0, -1])], 800.0 - np.log(2.0), rtol=1e-15)
    z = np.array([0.3 + 0.7j, -1.2 - 0.4j, 2.0 + 3.0j])
    np.testing.assert_allclose(jax.jit(log_cosh)(z), np.log(np.cosh(z)), rtol=1e-13)
