"""Model builders: a config's [model] section -> a flax module, for the registry."""

from __future__ import annotations

import jax.numpy as jnp

from nqs_cli.config import Config
from nqs_cli.models import DeepSetMLP, DeepSetRelDistance, GaussianEnvelope, RBMMultiVal, activation_by_name
from nqs_cli.systems.continuum.space import ParticleSpace


def param_dtype(cfg: Config):
    """The parameters' dtype: ``model.param_dtype``, unless ``dtype = "float32"`` overrides a real
    one (complex ones agree with ``dtype``: config/resolve.py)."""
    if cfg.model.param_dtype.startswith("complex"):
        return getattr(jnp, cfg.model.param_dtype)
    return jnp.float32 if cfg.dtype == "float32" else getattr(jnp, cfg.model.param_dtype)


def build_rbm_multival(cfg: Config, space) -> RBMMultiVal:
    m = cfg.model
    return RBMMultiVal(
        n_classes=space.local_dim,
        alpha=m.alpha,
        use_hidden_bias=m.use_hidden_bias,
        use_visible_bias=m.use_visible_bias,
        param_dtype=param_dtype(cfg),
    )


def _deepset_fields(cfg: Config) -> dict:
    """The fields the two DeepSets models share, from [model]."""
    m = cfg.model
    return dict(
        features_phi=m.features_phi,
        features_rho=m.features_rho,
        param_dtype=param_dtype(cfg),
        output_activation=activation_by_name(m.output_activation),
        use_bias=m.use_bias,
    )


def build_deepsets(cfg: Config, space: ParticleSpace):
    m = cfg.model
    net = DeepSetMLP(**_deepset_fields(cfg), hidden_activation=activation_by_name(m.activation), n_dims=space.dims)
    if m.envelope == "none":
        return net
    omega = cfg.hamiltonian.trap_omega if cfg.hamiltonian.trap_omega > 0 else 1.0
    return GaussianEnvelope(inner=net, n_dims=space.dims, a_init=0.5 * space.mass * omega, param_dtype=param_dtype(cfg))


def build_reldist(cfg: Config, space: ParticleSpace) -> DeepSetRelDistance:
    m = cfg.model
    return DeepSetRelDistance(
        **_deepset_fields(cfg),
        extent=space.extent,
        layers_phi=m.layers_phi,
        layers_rho=m.layers_rho,
        cusp_exponent=m.cusp_exponent,
        activation=activation_by_name(m.activation),
    )
