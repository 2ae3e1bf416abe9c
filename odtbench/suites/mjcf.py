"""Gymnasium MuJoCo envs made without MuJoCo's `settotalmass` deprecation warning.

Gymnasium's HalfCheetah model sets `<compiler settotalmass="14"/>`; MuJoCo >= 3.5 (the
4.x we install included) prints a deprecation WARNING from its C compiler, unfilterable
from Python, for every env made. This does what MuJoCo's migration note says at the source:
compile the model without the attribute, then scale the compiled masses with
`mj_setTotalmass` and recompute the derived constants with `mj_setConst`. Masses, inertias
and rollouts come out bit-identical to the original model (checked by
tests/test_tasks.py::test_halfcheetah_without_settotalmass_is_identical).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from odtbench.errors import OdtbenchError

_TOTAL_MASS = re.compile(r'\s+settotalmass="([^"]+)"')
# env ids whose gymnasium model sets the attribute: the model file of their entry point
_ASSETS = {"HalfCheetah": "half_cheetah.xml"}


@cache
def _patched(env_name: str) -> tuple[str, float] | None:
    """(path of the model without settotalmass, the total mass) for `env_name`, or None."""
    import gymnasium.envs.mujoco as gm

    asset = _ASSETS.get(env_name)
    if asset is None:
        return None
    text = (Path(gm.__file__).parent / "assets" / asset).read_text()
    m = _TOTAL_MASS.search(text)
    if m is None:  # a gymnasium that already migrated its model
        return None
    fixed = text.replace(m.group(0), "", 1)
    digest = hashlib.sha256(fixed.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"odtbench-{digest}-{asset}"
    if not path.is_file():
        tmp = path.with_suffix(f".{digest}.tmp")
        tmp.write_text(fixed)
        tmp.replace(path)
    return str(path), float(m.group(1))


def make(env_id: str, **kwargs: Any):
    """`gymnasium.make(env_id, **kwargs)`, minus the settotalmass warning (same model)."""
    import gymnasium as gym

    name = env_id.split("-v")[0]
    patch = None if "xml_file" in kwargs else _patched(name)
    if patch is None:
        return gym.make(env_id, **kwargs)
    import mujoco

    env = gym.make(env_id, xml_file=patch[0], **kwargs)
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    raw = env.unwrapped
    if not isinstance(raw, MujocoEnv):
        raise OdtbenchError(f"{env_id}: a patched model needs a MuJoCo env, got {type(raw).__name__}")
    mujoco.mj_setTotalmass(raw.model, patch[1])
    mujoco.mj_setConst(raw.model, raw.data)
    return env


@contextmanager
def warning_free_makes() -> Iterator[None]:
    """`gymnasium.make` as `make` while a library that makes envs from an id or spec runs:
    Minari's dataset writer makes two (for the spaces and the reference-score env), which
    would print the warning twice per dataset build. Same models, so the same spaces."""
    import gymnasium as gym

    plain = gym.make

    def _make(env: Any, **kwargs: Any) -> Any:
        spec = gym.spec(env) if isinstance(env, str) else env
        if (not isinstance(spec, gym.envs.registration.EnvSpec) or "xml_file" in kwargs
                or "xml_file" in (spec.kwargs or {}) or _patched(spec.name) is None):
            return plain(env, **kwargs)
        if spec.max_episode_steps is not None:
            kwargs.setdefault("max_episode_steps", spec.max_episode_steps)
        return make(spec.id, **{**(spec.kwargs or {}), **kwargs})

    gym.make = _make  # type: ignore[assignment]
    try:
        yield
    finally:
        gym.make = plain
