"""Build (once) and load the dataset of a task at a scale.

Dataset ids: generated datasets are ``odtbench/<suite>-<dataset>/<scale>-v0`` (the scale is
in the id because sizes differ), e.g. ``odtbench/mujoco-hopper-medium/quick-v0``. The toy
bandit's 128 trajectories are the same at every scale, so it has one id,
``odtbench/toy/bandit-v0``. A ``minari:<id>`` source keeps its published id.

Next to each dataset (inside its directory) ``odtbench_dataset.json`` records the build
info returned by `build_dataset`: id, source, path, checksum, reference, stats and how the
data were made. For a published Minari dataset the same file goes under
``<root>/.odtbench/<id>/`` so the user's copy is never modified.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from odtbench.data import minari_io
from odtbench.data.trajectories import Trajectory
from odtbench.errors import DatasetError, OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.schemas import SCALES, data_scale
from odtbench.tasks import Task, get_task

INFO_FILE = "odtbench_dataset.json"
TOY_DATASET_ID = "odtbench/toy/bandit-v0"
TOY_SEED = 59  # the authors' seed for the toy data (docs/toy.md)
BEHAVIOUR_DIR = ".odtbench-behaviour"  # hidden: Minari skips hidden dirs when listing

# (task, scale, datasets root, progress) -> (trajectories, recipe info, description, algorithm)
Generator = Callable[[Task, str, Path, bool], tuple[list[Trajectory], dict, str, str]]
# Recipes of ``generated:<prefix>/...`` sources that suites plug in (`register_source`).
_SOURCES: dict[str, Generator] = {}


def register_source(prefix: str, generate: Generator) -> None:
    """Let a suite build the datasets of its ``generated:<prefix>/...`` sources."""
    old = _SOURCES.get(prefix)
    if old is not None and old is not generate:
        raise OdtbenchError(f"dataset source prefix {prefix!r} is registered twice")
    _SOURCES[prefix] = generate


def _check_scale(scale: str) -> str:
    """The scale whose files `scale` trains on (a scale built on another shares its data)."""
    if scale not in SCALES:
        raise UnknownChoiceError("scale", scale, SCALES)
    return data_scale(scale)


def dataset_id(task_key: str | Task, scale: str) -> str:
    """The Minari id the task's data has (or will have) at `scale`."""
    task = task_key if isinstance(task_key, Task) else get_task(task_key)
    scale = _check_scale(scale)
    if task.source_kind == "minari":
        return task.source_name
    if task.source == "generated:toy-bandit":
        return TOY_DATASET_ID
    return f"odtbench/{task.suite}-{task.dataset}/{scale}-v0"


def _info_path(task: Task, did: str, root: Path) -> Path:
    if task.source_kind == "minari":
        return root / ".odtbench" / did / INFO_FILE
    return root / did / INFO_FILE


def dataset_stats(trajectories: list[Trajectory], task: Task) -> dict[str, Any]:
    """Episodes, transitions and return / normalised-score mean and std (cf. paper Tab. 6)."""
    rets = np.array([t.ret for t in trajectories], dtype=np.float64)
    # Offline returns may be in other units than online ones (a suite's reward wrappers):
    # such tasks say how to score their data; success-rate tasks have no return score.
    normalize = getattr(task, "normalize_offline", task.normalize)
    scores = np.asarray(normalize(rets), dtype=np.float64)
    no_score = task.score_kind == "success_rate"
    return {
        "episodes": len(trajectories),
        "transitions": int(sum(len(t) for t in trajectories)),
        "terminations": int(sum(int(t.terminations.sum()) for t in trajectories)),
        "truncations": int(sum(int(t.truncations.sum()) for t in trajectories)),
        "return_mean": float(rets.mean()), "return_std": float(rets.std()),
        "return_min": float(rets.min()), "return_max": float(rets.max()),
        "score_mean": None if no_score else float(scores.mean()),
        "score_std": None if no_score else float(scores.std()),
    }


def _generate(task: Task, scale: str, root: Path, progress: bool) -> tuple[list[Trajectory], dict, str, str]:
    """(trajectories, recipe info, description, algorithm name) of a generated source."""
    recipe = task.source_name
    if recipe == "toy-bandit":
        from odtbench.toy import make_toy_trajectories

        desc = ("odtbench toy bandit (study Sec. 3.1): 128 one-step trajectories, 100 actions "
                "~U[-1,-0.95), 28 ~U[0.5,1), reward peak 1 at a=0 hidden from the data")
        return make_toy_trajectories(seed=TOY_SEED), {"recipe": recipe, "seed": TOY_SEED}, desc, "toy-bandit"
    if recipe.startswith("d4rl/"):
        from odtbench.data import recipes

        quality = recipe.split("/", 1)[1]
        trajs, info = recipes.generate(quality, task.make_env, task.env_id, task.normalize, scale,
                                       root / BEHAVIOUR_DIR, progress)
        desc = (f"odtbench D4RL-recipe '{quality}' dataset for {task.env_id} at scale {scale} "
                f"(seed {info['seed']}): {info.get('policy', '')}. D4RL used the -v2 envs and SAC; "
                "this is a locally generated equivalent, not D4RL's data.")
        return trajs, info, desc, f"odtbench d4rl/{quality} (TD3 behaviour agent)"
    plugged = _SOURCES.get(recipe.split("/", 1)[0])
    if plugged is not None:  # a suite's own recipe (adroit/antmaze/maze2d/delayed stand-ins)
        return plugged(task, scale, root, progress)
    valid = (["generated:toy-bandit"]
             + [f"generated:d4rl/{q}" for q in ("random", "medium", "medium-replay", "expert")]
             + [f"generated:{p}/..." for p in _SOURCES])
    raise UnknownChoiceError("dataset source", task.source, valid)


def _missing_minari(task: Task, did: str, root: Path, scale: str) -> DatasetError:
    alt = f"`odtbench dataset build --task {task.key} --scale {scale}` (default source {get_task(task.key).source})"
    return DatasetError(
        f"dataset {did} not found under {root} and it could not be downloaded; obtain it with "
        f"`minari download {did}` on a machine with network access and copy it into "
        f"$MINARI_DATASETS_PATH, or use the generated equivalent: {alt}")


def build_dataset(task_key: str, scale: str, root: str | os.PathLike | None = None,
                  force: bool = False, *, source: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Make the task's dataset at `scale` unless it is already there; returns its build info.

    A ``minari:`` source is downloaded when missing and the network allows it, else this
    raises `DatasetError` naming how to get it and the generated equivalent.
    """
    scale = _check_scale(scale)
    task = get_task(task_key, source=source)
    root_path = minari_io.resolve_root(root)
    did = dataset_id(task, scale)
    info_file = _info_path(task, did, root_path)
    present = minari_io.dataset_exists(did, root_path)
    rebuild = f"`odtbench dataset build --task {task.key} --scale {scale} --force`"
    if present and not force and info_file.is_file():
        # the data must still be what the record describes: a truncated or edited copy
        # is an error here, not stats of data that no run can load
        info = _read_info(info_file, rebuild)
        trajs = minari_io.load_trajectories(did, root_path)
        if info.get("checksum") != minari_io.trajectories_checksum(trajs):
            raise DatasetError(f"dataset {did} at {root_path / did} no longer matches its "
                               f"recorded checksum; rebuild it with {rebuild}")
        return info
    if present and not force and task.source_kind != "minari":
        # generated data without its build record: never replace it silently (runs made from
        # it would become stale); rebuilding is the user's call
        raise DatasetError(f"dataset {did} at {root_path / did} has no {INFO_FILE} (its build "
                           f"record); rebuild it with {rebuild}")
    try:
        # writable? asked before any data is generated, not after
        root_path.mkdir(parents=True, exist_ok=True)
        probe = root_path / f".probe-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600))
        probe.unlink()
        return _build(task, did, root_path, info_file, scale, present, force, progress)
    except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError on a full disk too
        from odtbench.runfiles.atomic import as_odtbench_error, is_disk_full

        # the write went to a temp dir that is gone now: no partial dataset is left
        fix = (f"free space there, or set {minari_io.ENV_VAR} to a disk with room, and re-run"
               if is_disk_full(exc) else
               f"set {minari_io.ENV_VAR} to a writable directory or make this one writable")
        raise as_odtbench_error(exc, root_path, fix=fix) from None


def _read_info(info_file: Path, rebuild: str) -> dict[str, Any]:
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{info_file} is unreadable ({type(exc).__name__}); rebuild the "
                           f"dataset with {rebuild}") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{info_file} is not a build record; rebuild the dataset with {rebuild}")
    return info


def _build(task: Task, did: str, root_path: Path, info_file: Path, scale: str, present: bool,
           force: bool, progress: bool) -> dict[str, Any]:
    if task.source_kind == "minari":
        if not present:
            _download(task, did, root_path, scale)
        trajs = minari_io.load_trajectories(did, root_path)
        meta = minari_io.read_metadata(did, root_path)
        info = _info(task, did, root_path, scale, trajs, {"recipe": "published Minari dataset"})
        info["minari_reference"] = {"min": meta.get("ref_min_score"), "max": meta.get("ref_max_score"),
                                    "source": "Minari dataset metadata"}
        info_file.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(info_file, json.dumps(info, indent=1))
        return info
    trajs, recipe_info, desc, algo = _generate(task, scale, root_path, progress)
    info = _info(task, did, root_path, scale, trajs, recipe_info)
    minari_io.write_dataset(did, trajs, env_id=task.env_id, root=root_path, ref_min_score=task.ref_min,
                            ref_max_score=task.ref_max, description=desc, algorithm_name=algo,
                            env_module=task.env_module, extra_files={INFO_FILE: json.dumps(info, indent=1)},
                            overwrite=force or present)
    return info


def _info(task: Task, did: str, root: Path, scale: str, trajs: list[Trajectory], recipe: dict) -> dict:
    return {
        "schema": "odtbench.dataset/1", "task": task.key, "scale": scale, "id": did,
        # relative to the datasets root, so run files never carry a machine's path
        "source": task.source, "path": did,
        "checksum": minari_io.trajectories_checksum(trajs),
        "reference": {k: v for k, v in task.reference.items() if k != "score_kind"},
        "score_kind": task.score_kind, "env_id": task.env_id,
        "stats": dataset_stats(trajs, task), "recipe": recipe,
    }


def _download(task: Task, did: str, root: Path, scale: str) -> None:
    import minari

    try:
        with minari_io._minari_root(root):
            minari.download_dataset(did)
    except Exception as exc:  # no network, unknown id, server error: all mean "not obtainable"
        raise _missing_minari(task, did, root, scale) from exc


def _atomic_write(path: Path, text: str) -> None:
    from odtbench.runfiles.atomic import write_text

    write_text(path, text)


def load_task_dataset(task_key: str, scale: str, root: str | os.PathLike | None = None,
                      *, source: str | None = None) -> tuple[list[Trajectory], dict[str, Any]]:
    """The task's trajectories and build info; `DatasetError` saying how to build it if missing."""
    scale = _check_scale(scale)
    task = get_task(task_key, source=source)
    root_path = minari_io.resolve_root(root)
    did = dataset_id(task, scale)
    if not minari_io.dataset_exists(did, root_path):
        if task.source_kind == "minari":
            raise _missing_minari(task, did, root_path, scale)
        raise DatasetError(f"dataset {did} not found under {root_path}; build it with "
                           f"`odtbench dataset build --task {task.key} --scale {scale}`")
    trajs = minari_io.load_trajectories(did, root_path)
    info_file = _info_path(task, did, root_path)
    rebuild = f"`odtbench dataset build --task {task.key} --scale {scale} --force`"
    if info_file.is_file():
        info = _read_info(info_file, rebuild)
        info["path"] = did  # datasets built before paths were relative recorded an absolute one
        if info.get("checksum") != minari_io.trajectories_checksum(trajs):
            raise DatasetError(f"dataset {did} at {root_path / did} no longer matches its recorded checksum; "
                               f"rebuild it with `odtbench dataset build --task {task.key} --scale {scale} --force`")
    elif task.source_kind != "minari":
        raise DatasetError(f"dataset {did} at {root_path / did} has no {INFO_FILE} (its build "
                           f"record); rebuild it with {rebuild}")
    else:  # a published dataset the user copied in: describe it on the fly
        info = _info(task, did, root_path, scale, trajs, {"recipe": "published Minari dataset"})
    return trajs, info
