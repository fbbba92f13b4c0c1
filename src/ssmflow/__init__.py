"""ssmflow: reproducible experiments on the learning dynamics of state space models."""

__version__ = "0.1.0"
