"""Resumable state: atomic torch checkpoints and every RNG a run draws from."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(*generators: torch.Generator) -> dict[str, Any]:
    """Global torch/numpy/python RNG states plus those of the given torch generators."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(), "generators": [g.get_state() for g in generators]}


def set_rng_state(state: dict[str, Any], *generators: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file then os.replace: a kill leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None when there is none."""
    if not path.exists():
        return None
    return torch.load(path, weights_only=False)
