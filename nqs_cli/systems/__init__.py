"""Physical systems: lattices with discrete Hilbert spaces, particles in continuous space."""
