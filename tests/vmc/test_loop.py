"""The host loop's health checks: spikes are redone with a smaller step, a dead ansatz stops
the run, and both with the real step on a forced saturation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from continuum_cases import make_cfg

from nqs_cli.setup import build_problem, build_training
from nqs_cli.vmc.loop import DeadAnsatzError, Health, run_loop
from nqs_cli.vmc.step import VMCState


def fake_state(bad: float = 0.0, step: int = 0) -> VMCState:
    return VMCState(step=jnp.asarray(step), params={"bad": jnp.asarray(bad)}, opt_state=(), chains=())


def fake_step(spike_after: int, dead_from: int | None = None):
    """The update made at state step ``spike_after`` with the full step spoils the next energy
    (variance 100 instead of 1); from ``dead_from`` on Tr S is 0."""

    def step(state, key, scale):
        t = int(state.step)
        bad = float(state.params["bad"])
        stats = {
            "energy": 1.0 + 50.0 * bad, "energy_error": 0.01, "variance": 1.0 + 99.0 * bad, "r_hat": 1.0, "tau_corr": 0.0,
            "acceptance": 0.5, "grad_norm": 1.0, "update_norm": 1.0, "fs_step": 0.01, "step_scale": float(scale),
            "trace_s": 0.0 if dead_from is not None and t >= dead_from else 1.0, "params_finite": True,
        }
        spoil = 1.0 if (t == spike_after and float(scale) == 1.0) else 0.0
        return fake_state(spoil, t + 1), stats

    return step


def test_a_spike_redoes_the_update_before_it_with_half_the_step():
    rows = []
    state, status = run_loop(fake_step(spike_after=14), fake_state(), jax.random.key(0), 30, lambda s, r: rows.append(r))
    assert status == "completed" and int(state.step) == 30
    assert [r.step for r in rows] == list(range(1, 31))  # every step once, in order
    assert all(r.stats["variance"] == 1.0 for r in rows)  # the spiky energy never reached the metrics
    assert rows[14].stats["step_scale"] == 0.5  # step 15 = the update made at state step 14, halved
    assert rows[-1].stats["spikes"] == 1.0


def test_spike_retries_are_bounded_and_the_check_can_be_off():
    rows = []
    always = fake_step(spike_after=14)

    def stubborn(state, key, scale):  # the spoiling update ignores the smaller step
        return always(state, key, 1.0)[0], {**always(state, key, scale)[1], "step_scale": float(scale)}

    run_loop(stubborn, fake_state(), jax.random.key(0), 20, lambda s, r: rows.append(r), health=Health(spike_retries=2))
    assert rows[-1].stats["spikes"] == 2.0 and max(r.stats["variance"] for r in rows) == 100.0
    rows.clear()
    run_loop(fake_step(spike_after=14), fake_state(), jax.random.key(0), 20, lambda s, r: rows.append(r), health=Health(spike_retries=0))
    assert rows[-1].stats["spikes"] == 0.0 and rows[15].stats["variance"] == 100.0


def test_counters_continue_from_the_history_of_a_resumed_run():
    rows = []
    history = [{"step": i, "energy": 1.0, "energy_error": 0.01, "variance": 1.0, "reverts": 2.0, "spikes": 3.0} for i in range(1, 21)]
    run_loop(fake_step(spike_after=24), fake_state(step=20), jax.random.key(0), 30, lambda s, r: rows.append(r), history=history)
    assert rows[0].step == 21 and rows[0].stats["reverts"] == 2.0 and rows[-1].stats["spikes"] == 4.0


def test_a_dead_ansatz_stops_the_run_after_the_patience():
    rows = []
    with pytest.raises(DeadAnsatzError, match="stopped depending on its parameters") as exc:
        run_loop(fake_step(spike_after=-1, dead_from=3), fake_state(), jax.random.key(0), 50, lambda s, r: rows.append(r),
                 health=Health(dead_steps=4, spike_retries=0))
    assert exc.value.status == "failed"
    assert [r.step for r in rows] == list(range(1, 8))  # every computed step reached the metrics
    assert "optimizer.learning_rate" in str(exc.value)


def test_an_update_that_collapses_psi_is_redone_with_a_smaller_step():
    """Tr S falling by orders of magnitude in one update (a saturated network) is a spike too:
    when the halved update keeps ψ alive, the run goes on."""

    def step(state, key, scale):
        t, dead = int(state.step), float(state.params["bad"])
        stats = {
            "energy": 1.0, "energy_error": 0.01, "variance": 1.0, "r_hat": 1.0, "tau_corr": 0.0, "acceptance": 0.5,
            "grad_norm": 1.0 - dead, "update_norm": 1.0, "fs_step": 0.01, "step_scale": float(scale),
            "trace_s": 0.0 if dead else 1.0, "params_finite": True,
        }
        kills = dead or (t == 5 and float(scale) == 1.0)
        return fake_state(1.0 if kills else 0.0, t + 1), stats

    rows = []
    state, status = run_loop(step, fake_state(), jax.random.key(0), 20, lambda s, r: rows.append(r), health=Health(dead_steps=3))
    assert status == "completed" and all(r.stats["trace_s"] == 1.0 for r in rows)
    assert rows[5].stats["step_scale"] == 0.5 and rows[-1].stats["spikes"] == 1.0


def test_forced_saturation_of_the_last_activation_is_detected_with_the_real_step():
    """DeepSetRelDistance ends in Dense(1) -> gelu -> Dense(1): with the input of that gelu at
    -1000, log ψ is constant, Tr S = 0 exactly, and the run stops (the periodic-box collapse)."""
    cfg = make_cfg(n=4, extent=4.0, omega=0.0, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5},
                   model={"features_phi": 4, "features_rho": 4}, sampler={"kind": "metropolis-gaussian", "n_chains": 4, "n_samples": 64})
    training = build_training(cfg, build_problem(cfg))
    state = training.init_state(0)
    rho = state.params["deepset"]["DeepSetMLP_0"]["ds_rho"]
    last_hidden = sorted(k for k in rho if k.startswith("Dense_"))[-2]
    params = jax.tree_util.tree_map(lambda a: a, state.params)
    params["deepset"]["DeepSetMLP_0"]["ds_rho"][last_hidden]["bias"] = jnp.full_like(rho[last_hidden]["bias"], -1000.0)
    state = state.replace(params=params)
    rows = []
    with pytest.raises(DeadAnsatzError):  # dead from the start: no healthy parameters to go back to
        run_loop(jax.jit(training.step), state, jax.random.key(1), 20, lambda s, r: rows.append(r), health=Health(dead_steps=3))
    assert len(rows) == 3 and all(r.stats["trace_s"] == 0.0 and r.stats["grad_norm"] == 0.0 for r in rows)
    assert rows[-1].stats["variance"] > 0  # not an eigenstate: the energy is still uncertain
    healthy = training.init_state(0)
    _, stats = jax.jit(training.step)(healthy, jax.random.key(1))
    assert float(stats["trace_s"]) > 1e-6
    assert np.isfinite(float(stats["fs_step"]))
