"""odtbench: offline-to-online RL benchmark for Decision Transformers."""

__version__ = "0.1.0"
