"""The run procedures: training, the run directory and checkpoints, evaluation, reports."""
