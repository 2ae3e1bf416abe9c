"""The last mile of faults (issue 30): nothing the suite did not write is deleted, and every
fault left is one line naming the file and the fix, a non-zero exit, no traceback. One tiny
offline test per fault; each failed on the commit before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_faults import TASK, _cli, _killed_run, _one_line, _run, _snakemake, _workflow_copy

REPO = Path(__file__).resolve().parents[1]


def _odtbench(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", **kw.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "odtbench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------ nothing of the user's

def test_a_users_tmp_files_in_out_survive_a_run(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    mine = [out / "notes.tmp", out / ".scratch.tmp", out / "plot.png.tmp"]
    strays = [out / ".curve.csv.4242-0a1b2c3d.tmp", out / "checkpoint" / ".state.pt.17-deadbeef.tmp"]
    for f in mine + strays:
        f.write_bytes(b"bytes")
    rc, err = _run(out, capsys)
    assert rc == 0, err
    assert all(f.read_bytes() == b"bytes" for f in mine)
    assert not any(f.exists() for f in strays)  # what a killed atomic writer of ours left


# ------------------------------------------------------------------ checkpoints and signals

@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_checkpoint_is_set_aside_and_the_run_starts_over(damage, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = _killed_run(out)
    data = ckpt.read_bytes()
    bad = {"truncated": data[: len(data) // 3], "garbage": b"not a checkpoint" * 10}[damage]
    ckpt.write_bytes(bad)
    rc, err = _run(out, capsys)  # no flag needed: a workflow job passes --replace-stale, a hand-run none
    assert rc == 0 and "Traceback" not in err, err
    said = [ln for ln in err.splitlines() if "is corrupt" in ln]
    assert len(said) == 1 and str(ckpt) in said[0] and "set aside as" in said[0], err
    (aside,) = out.glob("checkpoint.corrupt-*")
    assert (aside / "state.pt").read_bytes() == bad  # kept, not deleted
    assert (out / "summary.json").exists() and (out / "checkpoint" / "state.pt").exists()


def test_sigterm_says_so_exits_nonzero_and_the_run_resumes(toy_data, tmp_path):
    from odtbench.rundir import prepare

    out = tmp_path / "run"
    # a long pretraining (a checkpoint every 100 updates): the signal lands mid-run
    p = _odtbench("run", *TASK, "--out", str(out), "--set", "pretrain_updates=10000000")
    ckpt = out / "checkpoint" / "state.pt"
    for _ in range(600):  # the first checkpoint (at most 60 s)
        if ckpt.exists() or p.poll() is not None:
            break
        time.sleep(0.1)
    assert ckpt.exists() and p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    lines = [ln for ln in err.splitlines() if ln.startswith("odtbench: terminated")]
    assert len(lines) == 1 and "same command" in lines[0] and "Traceback" not in err, err
    assert prepare(out) == "resume"  # the checkpoint is intact and is resumed


# ------------------------------------------------------------------ pipes

def test_a_closed_pipe_is_no_traceback():
    r, w = os.pipe()
    os.close(r)  # the reader (`head -1`) is gone before anything is written
    p = subprocess.run([sys.executable, "-m", "odtbench.cli", "list", "tasks"], stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(w)
    assert p.returncode != 0 and p.stderr == "", p.stderr


# ------------------------------------------------------------------ full disks

H5_FULL = ("Can't decrement id ref count (file write failed: time = Sat Dec  5 21:35:50 2026\n, "
           "filename = 'main_data.hdf5', file descriptor = 3, errno = 28, error message = "
           "'No space left on device', buf = 0x55c6c3131318, total write size = 4)")


@pytest.mark.parametrize("error", [RuntimeError(H5_FULL), OSError(f"Unable to synchronously "
                                   f"write data ({H5_FULL})"), "precheck"])
def test_a_full_disk_during_dataset_build_is_one_line_and_leaves_nothing(
        error, tmp_path, capsys, monkeypatch):
    import minari

    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    if error == "precheck":  # the disk has clearly no room: nothing is written at all
        real = shutil.disk_usage
        monkeypatch.setattr(shutil, "disk_usage",
                            lambda p: real(p)._replace(free=100_000))
    else:
        real_create = minari.create_dataset_from_buffers

        def fails(*a, **k):  # h5py writes part of the file, then reports the full disk
            real_create(*a, **k)
            raise error

        monkeypatch.setattr(minari, "create_dataset_from_buffers", fails)
    stats = tmp_path / "stats.json"
    rc, err = _cli(["dataset", "build", "--task", "toy/bandit", "--scale", "smoke",
                    "--stats", str(stats)], capsys)
    _one_line(rc, err, str(root), "disk full", "free space")
    assert not stats.exists()
    assert [p.name for p in root.iterdir()] == []  # no dataset, no temp dir
