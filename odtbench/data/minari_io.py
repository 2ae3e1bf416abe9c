"""Minari I/O: write trajectories as a Minari dataset, read them back as `Trajectory`s.

The datasets root is the `root` argument, else ``$MINARI_DATASETS_PATH``, else
``<cwd>/datasets/minari``. Minari itself only reads the env var, so calls into it run with
the variable pointed at the resolved root for their duration (not thread-safe; the suite
does not write datasets from threads).

Writes are atomic: the dataset is created under a hidden temp root inside `root` and moved
into place with `os.replace`, so a failed write never leaves or overwrites a half dataset.
Minari stores T+1 observations per episode; a `Trajectory`'s ``next_observations`` are
``observations[1:]`` of that array, so a trajectory must be contiguous to be written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from odtbench.data.trajectories import Trajectory
from odtbench.errors import DatasetError

ENV_VAR = "MINARI_DATASETS_PATH"
DEFAULT_ROOT = Path("datasets") / "minari"
AUTHOR = "odtbench"
_RESERVED_EPISODE_ATTRS = {"id", "seed", "total_steps"}


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else $MINARI_DATASETS_PATH, else <cwd>/datasets/minari (absolute)."""
    if root is None:
        root = os.environ.get(ENV_VAR) or Path.cwd() / DEFAULT_ROOT
    return Path(root).expanduser().absolute()


def dataset_path(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    """Directory of a dataset (it holds ``data/``)."""
    return resolve_root(root) / dataset_id


def dataset_exists(dataset_id: str, root: str | os.PathLike | None = None) -> bool:
    return (dataset_path(dataset_id, root) / "data" / "metadata.json").is_file()


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old


def _episode_buffer(i: int, traj: Trajectory):
    from minari.data_collector import EpisodeBuffer

    obs = np.asarray(traj.observations)
    nxt = np.asarray(traj.next_observations)
    if len(traj) == 0:
        raise DatasetError(f"trajectory {i} is empty; drop empty trajectories before writing")
    if not np.array_equal(nxt[:-1], obs[1:]):
        raise DatasetError(
            f"trajectory {i} is not contiguous (next_observations[t] != observations[t+1]); "
            "split it at the break before writing it in Minari format")
    return EpisodeBuffer(
        id=i,
        observations=np.concatenate([obs, nxt[-1:]], axis=0),
        actions=np.asarray(traj.actions),
        rewards=np.asarray(traj.rewards),
        terminations=np.asarray(traj.terminations, dtype=bool),
        truncations=np.asarray(traj.truncations, dtype=bool),
    )


def write_dataset(
    dataset_id: str,
    trajectories: Sequence[Trajectory],
    *,
    env_id: str,
    root: str | os.PathLike | None = None,
    ref_min_score: float,
    ref_max_score: float,
    description: str,
    algorithm_name: str,
    env_module: str | None = None,
    eval_env_id: str | None = None,
    code_permalink: str | None = None,
    requirements: Sequence[str] | None = None,
    extra_files: Mapping[str, str | bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `trajectories` as Minari dataset `dataset_id` under `root`; returns its directory.

    `env_module` is imported first when the env is registered by a module (the toy bandit).
    `extra_files` (name -> content) are written into the dataset directory in the same
    atomic move, e.g. the suite's stats file. An existing dataset is only replaced with
    `overwrite=True`, and only once the new one is complete.
    """
    import minari

    if not trajectories:
        raise DatasetError(f"dataset {dataset_id}: no trajectories to write")
    if env_module:
        importlib.import_module(env_module)
    root_path = resolve_root(root)
    final = root_path / dataset_id
    if final.exists() and not overwrite:
        raise DatasetError(f"dataset {dataset_id} already exists at {final}; pass overwrite/force to replace it")
    buffers = [_episode_buffer(i, t) for i, t in enumerate(trajectories)]
    root_path.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(root_path)
    _check_space(root_path, trajectories)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".tmp-write-{_owner_tag()}-", dir=root_path))
    try:
        from odtbench.suites.mjcf import warning_free_makes

        with _minari_root(tmp_root), warnings.catch_warnings(), warning_free_makes():
            # Minari warns about unset optional metadata (permalink, email) and about env
            # specs with a callable entry point; neither matters for reading the data back.
            warnings.simplefilter("ignore", UserWarning)
            ds = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=_json_spec(env_id), eval_env=_json_spec(eval_env_id or env_id),
                algorithm_name=algorithm_name, author=AUTHOR, code_permalink=code_permalink,
                ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score),
                description=description, requirements=list(requirements) if requirements else None,
            )
            extras = [t.infos for t in trajectories]
            if any(extras):
                ds.storage.update_episode_metadata(
                    [{k: v for k, v in e.items() if k not in _RESERVED_EPISODE_ATTRS} for e in extras])
        built = tmp_root / dataset_id
        for name, content in (extra_files or {}).items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(built / name, mode) as fh:
                fh.write(content)
        _copy_namespace_metadata(tmp_root, root_path, dataset_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists():
            old = root_path / f".tmp-old-{_owner_tag()}-{uuid.uuid4().hex}"
            os.replace(final, old)
        os.replace(built, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _check_space(root: Path, trajectories: Sequence[Trajectory]) -> None:
    """ENOSPC before writing when `root`'s disk has clearly no room for the dataset: HDF5 may
    crash (SIGSEGV, past any clean error) closing a file whose writes failed for want of
    space. The estimate is the arrays' bytes plus HDF5's per-episode overhead (~16 KiB)."""
    arrays = sum(t.observations.nbytes + t.next_observations.nbytes + t.actions.nbytes
                 + t.rewards.nbytes + t.terminations.nbytes + t.truncations.nbytes
                 for t in trajectories)
    need = int(1.25 * arrays) + 16_384 * len(trajectories) + (1 << 20)
    free = shutil.disk_usage(root).free
    if free < need:
        raise OSError(errno.ENOSPC, f"about {need / 2**20:.0f} MiB needed, "
                      f"{free / 2**20:.0f} MiB free", str(root))


# Temp dirs of a write name their writer (`.tmp-write-<host>~<pid>-...`), so a later write
# removes those of dead writers on this host and never a live one's (datasets are built by
# parallel workflow jobs). Unnamed ones (earlier versions) go once they are a day old.
_TEMP_PREFIXES = (".tmp-write-", ".tmp-old-")
_STALE_UNNAMED_S = 24 * 3600


def _owner_tag() -> str:
    import socket

    return f"{socket.gethostname().replace('-', '_')}~{os.getpid()}"


def _writer_alive(path: Path) -> bool:
    import socket
    import time

    parts = path.name.split("-", 3)
    host, _, pid = (parts[2] if len(parts) == 4 else "").partition("~")
    if not pid.isdigit():
        try:
            return time.time() - path.stat().st_mtime < _STALE_UNNAMED_S
        except OSError:
            return True
    if host != socket.gethostname().replace("-", "_"):
        return True  # another machine's writer: cannot tell, leave it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(root: str | os.PathLike) -> list[Path]:
    """Remove the temp dirs that killed dataset writes left under `root`."""
    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.name.startswith(_TEMP_PREFIXES) and p.is_dir():
            if not _writer_alive(p):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def _json_spec(env_id: str):
    """The env's spec with a class entry point rewritten as 'module:Class' so it serialises."""
    import dataclasses

    import gymnasium as gym

    spec = gym.spec(env_id)
    if callable(spec.entry_point):
        ep: Any = spec.entry_point  # a class here, which gymnasium types as a creator
        spec = dataclasses.replace(spec, entry_point=f"{ep.__module__}:{ep.__qualname__}")
    return spec


def _copy_namespace_metadata(src_root: Path, dst_root: Path, dataset_id: str) -> None:
    """Minari marks each namespace level with a small JSON; keep those at the real root."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth]) / "namespace_metadata.json"
        if (src_root / rel).is_file() and not (dst_root / rel).is_file():
            (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src_root / rel, dst_root / rel)


def _flatten(x: Any, space: Any) -> np.ndarray:
    """Batch-flatten Box/Dict observations the way gymnasium.spaces.flatten orders them."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([_flatten(x[k], s) for k, s in space.spaces.items()], axis=1)
    arr = np.asarray(x)
    return arr.reshape(arr.shape[0], -1)


def _corrupt(dataset_id: str, path: Path, exc: BaseException) -> DatasetError:
    reason = (str(exc).splitlines() or [""])[0][:200]
    return DatasetError(
        f"dataset {dataset_id} at {path} is corrupt or truncated ({type(exc).__name__}: {reason}); "
        f"delete {path} and rebuild or re-download it")


def _open(dataset_id: str, root: str | os.PathLike | None):
    import minari

    path = dataset_path(dataset_id, root)
    if not dataset_exists(dataset_id, root):
        raise DatasetError(f"dataset {dataset_id} not found under {resolve_root(root)}; build or download it first")
    try:
        with _minari_root(resolve_root(root)):
            return minari.load_dataset(dataset_id), path
    except Exception as exc:  # h5py/json/minari raise many types for a damaged file
        raise _corrupt(dataset_id, path, exc) from exc


def read_metadata(dataset_id: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The dataset's Minari metadata (ref scores, env spec, description, sizes)."""
    ds, _ = _open(dataset_id, root)
    return dict(ds.storage.metadata)


# Decoding a Minari file episode by episode takes about a minute for 100K transitions on a
# loaded CPU, most of a run's start-up; the decoded arrays are kept in one .npz beside the
# suite's build record, valid while the dataset's files are unchanged (size, mtime) and its
# content checksum matches. Delete it freely: the next load rebuilds it.
CACHE_DIR = ".odtbench"
CACHE_FILE = "decoded.npz"
_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations",
           "truncations")


def decoded_cache_path(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    return resolve_root(root) / CACHE_DIR / dataset_id / CACHE_FILE


def _source_stamp(dataset_id: str, root: str | os.PathLike | None) -> str:
    """The dataset files' names, sizes and modification times: what the cache is valid for."""
    data = dataset_path(dataset_id, root) / "data"
    files = sorted(f for f in data.rglob("*") if f.is_file())
    return ";".join(f"{f.relative_to(data)}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                    for f in files)


def _read_cache(path: Path, stamp: str) -> list[Trajectory] | None:
    """The cached trajectories, or None when absent, stale or damaged (then decode anew)."""
    import json

    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["stamp"]) != stamp:
                return None
            cuts = np.cumsum(z["lengths"])[:-1]
            cols = {k: np.split(z[k], cuts) for k in _FIELDS}
            infos = json.loads(str(z["infos"]))
            checksum = str(z["checksum"])
        trajs = [Trajectory(observations=cols["observations"][i], actions=cols["actions"][i],
                            rewards=cols["rewards"][i],
                            next_observations=cols["next_observations"][i],
                            terminations=cols["terminations"][i],
                            truncations=cols["truncations"][i], infos=infos[i])
                 for i in range(len(infos))]
    except Exception:  # noqa: BLE001 - any damage means: decode the dataset again
        return None
    return trajs if trajectories_checksum(trajs) == checksum else None


def _write_cache(path: Path, stamp: str, trajs: Sequence[Trajectory]) -> None:
    import json

    from odtbench.runfiles.atomic import write_with

    try:
        infos = json.dumps([t.infos for t in trajs])
    except TypeError:  # metadata JSON cannot hold: no cache, decode each time
        return
    arrays: dict[str, Any] = {k: np.concatenate([getattr(t, k) for t in trajs]) for k in _FIELDS}
    arrays.update(lengths=np.array([len(t) for t in trajs], np.int64), infos=np.array(infos),
                  stamp=np.array(stamp), checksum=np.array(trajectories_checksum(trajs)))
    try:
        write_with(path, lambda fh: np.savez(fh, **arrays))
    except Exception:  # noqa: BLE001 - a read-only or full root only loses the speed-up
        pass


def load_trajectories(dataset_id: str, root: str | os.PathLike | None = None, *,
                      cache: bool = True) -> list[Trajectory]:
    """All episodes of a Minari dataset as `Trajectory`s (float32 arrays, flattened obs).

    Terminations and truncations are copied as stored: a time-limit end stays a
    truncation, never a terminal. Per-episode metadata written by `write_dataset` comes back
    in ``Trajectory.infos``. With `cache`, the decoded arrays are read from (and written to)
    `decoded_cache_path` while the dataset's files are unchanged.
    """
    if cache and dataset_exists(dataset_id, root):
        stamp = _source_stamp(dataset_id, root)
        cpath = decoded_cache_path(dataset_id, root)
        cached = _read_cache(cpath, stamp)
        if cached is not None:
            return cached
        trajs = _decode(dataset_id, root)
        _write_cache(cpath, stamp, trajs)
        return trajs
    return _decode(dataset_id, root)


def _decode(dataset_id: str, root: str | os.PathLike | None) -> list[Trajectory]:
    ds, path = _open(dataset_id, root)
    storage = ds.storage
    out: list[Trajectory] = []
    try:
        n_eps = int(storage.total_episodes)
        episodes = storage.get_episodes(range(n_eps))
        metas = storage.get_episode_metadata(range(n_eps))
        for ep, meta in zip(episodes, metas, strict=True):
            obs = _flatten(ep["observations"], storage.observation_space).astype(np.float32)
            act = np.asarray(ep["actions"], dtype=np.float32).reshape(len(ep["rewards"]), -1)
            infos = {k: v for k, v in meta.items() if k not in _RESERVED_EPISODE_ATTRS}
            out.append(Trajectory(
                observations=obs[:-1], actions=act,
                rewards=np.asarray(ep["rewards"], dtype=np.float32),
                next_observations=obs[1:],
                terminations=np.asarray(ep["terminations"], dtype=bool),
                truncations=np.asarray(ep["truncations"], dtype=bool),
                infos=infos,
            ))
        steps = sum(len(t) for t in out)
        if steps != int(storage.total_steps):
            raise ValueError(f"metadata says {storage.total_steps} steps, file holds {steps}")
    except DatasetError:
        raise
    except Exception as exc:
        raise _corrupt(dataset_id, path, exc) from exc
    return out


def trajectories_checksum(trajectories: Sequence[Trajectory]) -> str:
    """'sha256:<hex>' of the data itself (float32/bool arrays in order), not the file bytes.

    Content hashing keeps the checksum stable across HDF5 library versions and file layouts;
    two datasets with the same checksum hold the same transitions.
    """
    h = hashlib.sha256()
    for t in trajectories:
        h.update(np.int64(len(t)).tobytes())
        for arr, dtype in ((t.observations, "<f4"), (t.actions, "<f4"), (t.rewards, "<f4"),
                           (t.next_observations, "<f4"), (t.terminations, "u1"),
                           (t.truncations, "u1")):
            a = np.ascontiguousarray(np.asarray(arr).astype(dtype))
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def dataset_checksum(dataset_id: str, root: str | os.PathLike | None = None) -> str:
    """Content checksum of a stored dataset (see `trajectories_checksum`)."""
    return trajectories_checksum(load_trajectories(dataset_id, root, cache=False))
