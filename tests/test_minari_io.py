"""Minari I/O: round trip, terminations vs truncations, atomic writes, corrupt files."""

import os
from pathlib import Path

import minari
import numpy as np
import pytest

from odtbench.data import minari_io
from odtbench.data.minari_io import (
    dataset_checksum,
    load_trajectories,
    read_metadata,
    resolve_root,
    trajectories_checksum,
    write_dataset,
)
from odtbench.data.trajectories import Trajectory
from odtbench.errors import DatasetError

ENV = "Pendulum-v1"  # classic control: cheap to make, 3-dim obs, 1-dim action
DID = "odtbench-test/pendulum/tiny-v0"


def _traj(rng, n, terminated):
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    return Trajectory(
        observations=obs[:-1], actions=rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32), next_observations=obs[1:].copy(),
        terminations=np.array([False] * (n - 1) + [terminated]),
        truncations=np.array([False] * (n - 1) + [not terminated]),
    )


@pytest.fixture
def trajs():
    rng = np.random.default_rng(0)
    return [_traj(rng, 5, True), _traj(rng, 7, False), _traj(rng, 1, True)]


def _write(trajs, root, **kw):
    return write_dataset(DID, trajs, env_id=ENV, root=root, ref_min_score=-1.0, ref_max_score=2.0,
                         description="unit test", algorithm_name="hand-built", **kw)


def test_round_trip_keeps_arrays_and_end_kinds(trajs, tmp_path):
    path = _write(trajs, tmp_path)
    assert path == tmp_path / DID and (path / "data" / "main_data.hdf5").is_file()
    back = load_trajectories(DID, tmp_path)
    assert len(back) == 3
    for a, b in zip(trajs, back, strict=True):
        for f in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # a time-limit end stays a truncation, never becomes terminal
    assert back[1].truncations[-1] and not back[1].terminations.any()
    assert back[0].terminations[-1] and not back[0].truncations.any()
    meta = read_metadata(DID, tmp_path)
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-1.0, 2.0)
    assert meta["description"] == "unit test" and meta["total_steps"] == 13
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())  # temp dirs cleaned


def test_readable_by_plain_minari(trajs, tmp_path, monkeypatch):
    _write(trajs, tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset(DID)
    assert ds.total_episodes == 3 and ds.total_steps == 13
    assert DID in minari.list_local_datasets()
    eps = list(ds.iterate_episodes())
    np.testing.assert_array_equal(eps[1].truncations, trajs[1].truncations)


def test_episode_infos_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    t = _traj(rng, 3, True)
    t.infos = {"success": True}
    _write([t], tmp_path)
    assert bool(load_trajectories(DID, tmp_path)[0].infos["success"])


def test_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_root() == tmp_path / "datasets" / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env"
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"


def test_existing_dataset_is_not_overwritten_unless_asked(trajs, tmp_path):
    _write(trajs, tmp_path)
    with pytest.raises(DatasetError, match="already exists"):
        _write(trajs[:1], tmp_path)
    assert len(load_trajectories(DID, tmp_path)) == 3
    _write(trajs[:1], tmp_path, overwrite=True)
    assert len(load_trajectories(DID, tmp_path)) == 1


def test_failed_write_leaves_nothing_and_keeps_the_old_dataset(trajs, tmp_path, monkeypatch):
    broken = _traj(np.random.default_rng(2), 4, True)
    broken.next_observations[0] += 1.0  # not contiguous: cannot be stored as T+1 observations
    with pytest.raises(DatasetError, match="not contiguous"):
        _write([broken], tmp_path)
    assert not (tmp_path / DID).exists()
    _write(trajs, tmp_path)
    before = (tmp_path / DID / "data" / "main_data.hdf5").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(trajs[:1], tmp_path, overwrite=True)
    assert (tmp_path / DID / "data" / "main_data.hdf5").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odtbench-test"]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_gives_one_line_error_and_touches_nothing(trajs, tmp_path, damage):
    _write(trajs, tmp_path)
    h5 = tmp_path / DID / "data" / "main_data.hdf5"
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:64] + os.urandom(len(data) - 64))
    damaged = h5.read_bytes()
    with pytest.raises(DatasetError, match="corrupt or truncated") as e:
        load_trajectories(DID, tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path / DID) in str(e.value)
    assert h5.read_bytes() == damaged


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_trajectories("odtbench-test/none/x-v0", tmp_path)


def test_checksum_is_content_based(trajs, tmp_path):
    _write(trajs, tmp_path)
    assert dataset_checksum(DID, tmp_path) == trajectories_checksum(trajs)
    assert trajectories_checksum(trajs).startswith("sha256:")
    trajs[2].rewards[0] += 1e-3
    assert dataset_checksum(DID, tmp_path) != trajectories_checksum(trajs)


def test_env_var_restored_after_calls(trajs, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", "/somewhere/else")
    _write(trajs, tmp_path)
    load_trajectories(DID, tmp_path)
    assert os.environ["MINARI_DATASETS_PATH"] == "/somewhere/else"
    assert isinstance(minari_io.dataset_path(DID, tmp_path), Path)


def _same(a, b):
    return trajectories_checksum(a) == trajectories_checksum(b) and \
        [t.infos for t in a] == [t.infos for t in b]


def test_decoded_cache_is_used_while_the_files_are_unchanged(trajs, tmp_path, monkeypatch):
    _write(trajs, tmp_path)
    cache = minari_io.decoded_cache_path(DID, tmp_path)
    first = load_trajectories(DID, tmp_path)
    assert cache.is_file() and _same(first, trajs)

    def no_decoding(*a, **kw):
        raise AssertionError("decoded the HDF5 file although the cache is valid")

    monkeypatch.setattr(minari_io, "_decode", no_decoding)
    assert _same(load_trajectories(DID, tmp_path), trajs)
    with pytest.raises(AssertionError):  # cache=False always reads the dataset itself
        load_trajectories(DID, tmp_path, cache=False)


@pytest.mark.parametrize("damage", ["garbage", "stale", "tampered"])
def test_a_damaged_or_stale_cache_is_ignored_and_rewritten(trajs, tmp_path, damage):
    _write(trajs, tmp_path)
    cache = minari_io.decoded_cache_path(DID, tmp_path)
    load_trajectories(DID, tmp_path)
    if damage == "garbage":
        cache.write_bytes(b"not an npz")
    elif damage == "stale":  # the dataset rewritten with other data since the cache was made
        _write(trajs[:2], tmp_path, overwrite=True)
    else:  # same stamp, other numbers: the stored checksum no longer matches
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["rewards"] = arrays["rewards"] + 1.0
        np.savez(cache, **arrays)
    expected = trajs[:2] if damage == "stale" else trajs
    assert _same(load_trajectories(DID, tmp_path), expected)
    assert _same(minari_io._read_cache(cache, minari_io._source_stamp(DID, tmp_path)), expected)
