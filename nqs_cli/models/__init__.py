"""Variational wave functions (flax.linen) with NetKet 3.23's parameter trees."""

from nqs_cli.models.activations import ACTIVATIONS, activation_by_name
from nqs_cli.models.deepsets import DeepSetMLP, DeepSetRelDistance, GaussianEnvelope
from nqs_cli.models.rbm import RBM, RBMMultiVal

__all__ = [
    "ACTIVATIONS",
    "RBM",
    "DeepSetMLP",
    "DeepSetRelDistance",
    "GaussianEnvelope",
    "RBMMultiVal",
    "activation_by_name",
]
