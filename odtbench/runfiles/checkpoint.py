"""Resumable state: atomic torch checkpoints and every RNG a run draws from."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.errors import OdtbenchError


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
    """torch.save through the atomic writer (unique temp name, fsync, rename): a kill leaves the
    previous checkpoint intact. Stamps the payload with the code that made it (`CODE_KEY`)."""
    from odtbench.runfiles.atomic import torch_save
    from odtbench.runfiles.codehash import code_fingerprint

    torch_save(path, {**payload, CODE_KEY: code_fingerprint()})


CODE_KEY = "odtbench_code"


class CorruptCheckpointError(OdtbenchError):
    """A checkpoint file that cannot be read back: the run directory's check
    (odtbench.runfiles.rundir) sets it aside and starts the run over."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"checkpoint {path} is corrupt, truncated or empty ({reason}); "
                         f"delete {path.parent} to start the run over")


def corrupt_checkpoint_error(path: Path, exc: BaseException) -> CorruptCheckpointError:
    reason = (str(exc).splitlines() or [""])[0][:120] or type(exc).__name__
    return CorruptCheckpointError(path, f"{type(exc).__name__}: {reason}")


def read(path: Path) -> dict[str, Any]:
    """torch.load of a checkpoint; a damaged file is a CorruptCheckpointError."""
    try:
        payload = torch.load(path, weights_only=False)
    except PermissionError as exc:  # not damaged: unreadable by this user
        raise OdtbenchError(f"cannot read {path} ({exc.strerror}); make it readable "
                            "(chmod u+r) and re-run") from None
    except Exception as exc:  # pickle/zip/torch raise many types (torch's reader an OSError
        raise corrupt_checkpoint_error(path, exc) from None  # with errno 22 when truncated)
    if not isinstance(payload, dict) or "state" not in payload:
        raise corrupt_checkpoint_error(path, ValueError("not an odtbench checkpoint"))
    return payload


# One payload read ahead by the run-directory check (odtbench.runfiles.rundir), handed to the next
# `load` of the same unchanged file so a resume reads a large checkpoint once, not twice.
_preloaded: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def preload(path: Path) -> dict[str, Any]:
    payload = read(path)
    _preloaded.clear()
    _preloaded[path] = (_stamp(path), payload)
    return payload


def forget() -> None:
    """Drop a preloaded payload that will not be resumed."""
    _preloaded.clear()


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None when there is none."""
    if not path.exists():
        _preloaded.pop(path, None)
        return None
    kept = _preloaded.pop(path, None)
    if kept is not None and kept[0] == _stamp(path):
        return kept[1]
    return read(path)
