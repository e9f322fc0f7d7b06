"""What a model offers besides ``module.apply``: exact fast paths that exploit its structure.

Every field is optional; None means "use the generic path" (autodiff, a full forward pass
per configuration). Each fast path gives the same values as the generic one, to rounding
(tests/models/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True, eq=False)
class FastPaths:
    log_psi: Callable | None = None  # (params, x) -> log ψ(x), the module's value
    local_energy: Callable | None = None  # (params, x) -> E_loc(x) on a bond Hamiltonian
    local_energy_block: int | None = None  # samples per block of local energies
    evaluator: Any = None  # sampler amplitude evaluator: prepare / init / update (vmc/sampler.py)
    jacobian: Callable | None = None  # (params, samples) -> structured Jacobian map (vmc/jacobians.py)
    gradients: Callable | None = None  # (params, samples) -> (N, P) ∂ log ψ/∂θ, flat in ravel_pytree order (for a dense Ō)
    derivatives: Callable | None = None  # (params, x) -> (∇ log ψ, ∇² log ψ), continuous space
