"""Which training code a run ran: a content hash of the packages that train.

The git commit alone cannot tell an edited working tree from the commit, and an installed
copy has no git at all; a hash of the files themselves can. A checkpoint made by other code
is never resumed (odtbench.runfiles.rundir), and config.json records the hash of the code that made
the run. The analysis and report code is left out: editing a table or a template must not
make a killed run start over.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

# Packages whose code decides a run's numbers; one that is not importable is skipped.
TRAINING_PACKAGES = ("odtbench", "odtbench_baselines")
EXCLUDED = ("odtbench/analysis", "odtbench/report", "odtbench/reference")
SUFFIXES = (".py", ".csv", ".json", ".yaml")


def _package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def code_fingerprint() -> str:
    """'sha256:<hex>' over the training packages' source files (paths and contents)."""
    h = hashlib.sha256()
    for name in TRAINING_PACKAGES:
        root = _package_root(name)
        if root is None:
            continue
        for f in sorted(root.rglob("*")):
            rel = f"{name}/{f.relative_to(root).as_posix()}"
            if (not f.is_file() or f.suffix not in SUFFIXES or "__pycache__" in f.parts
                    or rel.startswith(EXCLUDED)):
                continue
            h.update(rel.encode() + b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return "sha256:" + h.hexdigest()
