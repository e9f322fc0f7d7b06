"""nqs: variational Monte Carlo for neural quantum states, driven from the command line."""

__version__ = "0.1.0"
