"""From a validated config to built parts: the kind -> builder registry, the Problem and the
run's engine (Training)."""

from nqs_cli.setup.problem import Problem
from nqs_cli.setup.registry import build_problem
from nqs_cli.setup.training import Training, build_training

__all__ = ["Problem", "Training", "build_problem", "build_training"]
