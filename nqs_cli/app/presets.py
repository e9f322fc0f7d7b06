"""Built-in systems for `nqs summary --model KIND` without a config (the shipped references)."""

from __future__ import annotations

PRESETS: dict[str, tuple[str, dict]] = {
    "rbm-multival": (
        "Bose-Hubbard chain L=8, N=8, n_max=3, U=4 (design reference system)",
        {
            "name": "bose-hubbard-1d",
            "lattice": {"graph": "chain", "length": 8, "pbc": True},
            "hilbert": {"kind": "fock", "n_max": 3, "n_particles": 8},
            "hamiltonian": {"kind": "bose-hubbard", "J": 1.0, "U": 4.0},
            "model": {"kind": "rbm-multival", "alpha": 1},
        },
    ),
    "deepsets": (
        "6 bosons in a 1D harmonic trap",
        {
            "name": "harmonic-trap",
            "space": {"n_particles": 6, "dims": 1, "extent": 0.0},
            "hamiltonian": {"kind": "continuous", "trap_omega": 1.0},
            "model": {"kind": "deepsets"},
        },
    ),
    "deepsets-reldist": (
        "6 bosons in a 1D periodic box of side 6",
        {
            "name": "periodic-bosons",
            "space": {"n_particles": 6, "dims": 1, "extent": 6.0},
            "hamiltonian": {"kind": "continuous", "pair": {"kind": "gaussian", "g": 2.0, "sigma": 0.5}},
            "model": {"kind": "deepsets-reldist"},
        },
    ),
}
