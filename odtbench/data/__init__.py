"""Data layer: trajectories, Minari I/O, dataset recipes, replay buffer and segment sampler."""

from odtbench.data.trajectories import Trajectory

__all__ = ["Trajectory"]
