"""Non-DT agents shared across the suite (the MLP TD3 behaviour/baseline learner)."""

from odtbench.agents.td3 import TD3, ReplayBuffer, TD3Config, td3_actor_loss

__all__ = ["TD3", "TD3Config", "ReplayBuffer", "td3_actor_loss"]
