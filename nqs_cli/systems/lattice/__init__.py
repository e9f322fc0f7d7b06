"""Lattice systems: graphs, Fock and spin spaces, bond Hamiltonians, exact diagonalisation."""
