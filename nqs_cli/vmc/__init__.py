"""The VMC engine: Metropolis sampling, statistics, Jacobians, SR, the compiled step and the host loop."""
