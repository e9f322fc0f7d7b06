"""Particles in continuous space: the space, potentials, the Hamiltonian, observables."""
