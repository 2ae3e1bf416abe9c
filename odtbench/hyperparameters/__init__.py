"""Hyperparameters: the typed schemas with their bounds, the value and memory checks, `--set` overrides, a run's resolved configuration."""
