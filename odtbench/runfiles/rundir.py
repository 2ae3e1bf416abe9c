"""What a run finds in its directory before it starts: resume, or start from nothing.

A checkpoint is resumed only when it is a run's unfinished state made by the same training
code. Otherwise the run starts from nothing, and says why:

- a finished checkpoint without summary.json: the summary was deleted to ask for a re-run
  (Snakemake deletes a job's output before `--forcerun` / `-R` / a rerun trigger runs it);
  resuming would only rewrite the old numbers;
- a checkpoint made by other code (odtbench.runfiles.codehash): resuming it would mix two versions;
- a corrupt or truncated checkpoint (a disk that filled up or failed, a copy cut short): it
  is set aside as `checkpoint.corrupt-<UTC time>/` (renamed, never deleted) for a look.

Temp files left by killed writers are removed first. Call with the run lock held.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from odtbench.runfiles import checkpoint
from odtbench.runfiles.atomic import clean_stray_temps
from odtbench.runfiles.codehash import code_fingerprint

CKPT_DIR = "checkpoint"
# Files of a run that a fresh start replaces (config.json is rewritten by the run itself).
RUN_FILES = ("curve.csv", "probes.json", "summary.json")
_prepared: set[Path] = set()


def start_over(out: Path, reason: str) -> None:
    """Delete what a run in `out` made so far (not the lock, not log.txt), saying why."""
    print(f"odtbench: starting {out} from nothing: {reason}", file=sys.stderr)
    shutil.rmtree(out / CKPT_DIR, ignore_errors=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def set_aside(out: Path) -> Path:
    """Rename the checkpoint directory of `out` to a free `checkpoint.corrupt-<UTC time>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = out / f"{CKPT_DIR}.corrupt-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = out / f"{CKPT_DIR}.corrupt-{stamp}-{n}"
    (out / CKPT_DIR).rename(aside)
    return aside


def _check_chunks(out: Path, payload: dict) -> None:
    """The MLP baselines' append-only buffer chunks must all be there and readable."""
    import numpy as np

    for k, _ in enumerate(payload["state"].get("chunks") or []):
        path = out / CKPT_DIR / f"online_{k:05d}.npz"
        try:
            with np.load(path) as data:
                data.files  # noqa: B018 - opening reads the zip directory at the file's end
        except Exception as exc:
            raise checkpoint.corrupt_checkpoint_error(path, exc) from None


def prepare(out: str | Path, *, replace_stale: bool = False) -> str:
    """Make `out` ready for a run; returns "finished", "resume", "fresh" or "new".
    (`replace_stale` no longer changes anything here: a corrupt checkpoint is set aside either
    way; the CLI's stale-run guard is what the flag governs.)"""
    out = Path(out)
    key = out.absolute()
    for d in (out, out / CKPT_DIR):
        clean_stray_temps(d)
    if (out / "summary.json").exists():
        return "finished"
    ckpt = out / CKPT_DIR / "state.pt"
    if not ckpt.exists():
        _prepared.add(key)
        return "new"
    try:
        payload = checkpoint.preload(ckpt)
        _check_chunks(out, payload)
    except checkpoint.CorruptCheckpointError as exc:
        checkpoint.forget()
        aside = set_aside(out)
        start_over(out, f"checkpoint {exc.path} is corrupt or truncated ({exc.reason}); "
                   f"set aside as {aside}")
        _prepared.add(key)
        return "fresh"
    reason = None
    if payload.get(checkpoint.CODE_KEY) != code_fingerprint():
        reason = "its checkpoint was made by other training code"
    elif payload["state"].get("phase") == "done":
        reason = "its run had finished and summary.json was deleted (a forced re-run)"
    _prepared.add(key)
    if reason is None:
        return "resume"
    checkpoint.forget()
    start_over(out, reason)
    return "fresh"


def ensure_prepared(out: str | Path) -> None:
    """The run core's hook: prepare `out` unless the CLI already did (with its flags)."""
    key = Path(out).absolute()
    if key in _prepared:
        _prepared.discard(key)
        return
    prepare(out)
    _prepared.discard(key)
