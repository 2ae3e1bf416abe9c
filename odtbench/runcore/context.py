"""The data context of a run: task, offline dataset, seeds, environments and log.

What every loop (DT family, MLP baselines, PDT) sets up first, before it builds its agent.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from odtbench.data.trajectories import Trajectory
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.hyperparameters.schemas import Protocol
from odtbench.runfiles.checkpoint import seed_everything
from odtbench.tasks import Task

# Train on another scale's dataset (the scale ladder's dataset-size factor, docs/scales.md);
# config.json's dataset_info records which one was used.
DATASET_SCALE_ENV = "ODTBENCH_DATASET_SCALE"


def run_logger(out: Path) -> logging.Logger:
    """The run's log.txt (one handler per run directory, however often it is asked for)."""
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"odtbench.run.{out}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        h = logging.FileHandler(out / "log.txt")
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(h)
    return log


@dataclass
class RunContext:
    """What a run reads and the environments it acts in; the same for every loop."""

    cfg: RunConfig
    out: Path
    device: str
    task: Task
    trajectories: list[Trajectory]  # the offline data as loaded, before any preprocessing
    dataset_info: dict[str, Any]
    gen: torch.Generator  # the run's torch stream: batches, exploration noise
    eval_envs: list[gym.Env]
    online_env: gym.Env
    log: logging.Logger

    @property
    def hp(self) -> dict[str, Any]:
        """The record of the run's hyperparameters (config.json); code reads `typed`."""
        return self.cfg.hyperparameters

    @property
    def typed(self) -> Protocol:
        """The run's typed hyperparameters (the method's schema; `RunConfig.typed_as` gives
        them as a family's schema)."""
        return self.cfg.typed_as(Protocol)

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @classmethod
    def open(cls, cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> RunContext:
        from odtbench.data.build import load_task_dataset
        from odtbench.tasks import get_task

        out = Path(out_dir)
        task = get_task(cfg.task_key)
        data_scale = os.environ.get(DATASET_SCALE_ENV) or cfg.scale
        trajs, info = load_task_dataset(cfg.task_key, data_scale)
        seed_everything(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        n_eval = int(cfg.typed_as(Protocol).eval_episodes)
        return cls(cfg=cfg, out=out, device=device, task=task, trajectories=trajs,
                   dataset_info=info, gen=gen,
                   eval_envs=[task.make_eval_env() for _ in range(n_eval)],
                   online_env=task.make_env(), log=run_logger(out))
