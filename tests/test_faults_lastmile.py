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
from test_faults import (
    TASK,
    _cli,
    _killed_run,
    _one_line,
    _run,
    _snakemake,
    _stdout,
    _workflow_copy,
    finished,  # noqa: F401, F811  (a fixture, shared with test_faults)
)

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

@pytest.mark.parametrize("damage", ["cut_at_end", "truncated", "garbage"])
def test_a_corrupt_checkpoint_is_set_aside_and_the_run_starts_over(damage, toy_data, tmp_path,
                                                                   capsys, monkeypatch):
    import errno

    import torch

    out = tmp_path / "run"
    ckpt = _killed_run(out)
    data = ckpt.read_bytes()
    bad = {"cut_at_end": data[:-30], "truncated": data[: len(data) // 3],
           "garbage": b"not a checkpoint" * 10}[damage]
    ckpt.write_bytes(bad)
    if damage == "cut_at_end":  # what torch's file reader raises for some cuts near the end
        real_load = torch.load

        def load(f, *a, **k):
            if Path(f) == ckpt:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            return real_load(f, *a, **k)

        monkeypatch.setattr(torch, "load", load)
    rc, err = _run(out, capsys)  # no flag needed: a workflow job passes --replace-stale, a hand-run none
    assert rc == 0 and "Traceback" not in err, err
    said = [ln for ln in err.splitlines() if "is corrupt" in ln]
    assert len(said) == 1 and str(ckpt) in said[0] and "set aside as" in said[0], err
    (aside,) = out.glob("checkpoint.corrupt-*")
    assert (aside / "state.pt").read_bytes() == bad  # kept, not deleted
    assert (out / "summary.json").exists() and (out / "checkpoint" / "state.pt").exists()


def test_sigterm_says_so_exits_nonzero_and_the_run_resumes(toy_data, tmp_path):
    from odtbench.runfiles.rundir import prepare

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


# ------------------------------------------------------------------ files that are not text

def _workspace(tmp_path: Path) -> Path:
    """A copy of the workflow (Snakefile, workflows/) to run `snakemake`/`odtbench status` in."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    _workflow_copy(tmp_path, scale="smoke")
    return tmp_path


@pytest.mark.parametrize("content, needle", [(b"scale: smoke\n# caf\xe9\n", "not UTF-8"),
                                             (b"", "is empty"), (b"  \n", "is empty")])
def test_a_workflow_config_that_is_not_utf8_or_empty_is_one_line(content, needle, tmp_path, capsys,
                                                                 monkeypatch):
    wd = _workspace(tmp_path)
    (wd / "workflows/config.yaml").write_bytes(content)
    res = _snakemake(wd, "-n", "reports/toy.html")
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error: ")]
    assert res.returncode != 0 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "workflows/config.yaml" in lines[0] and needle in lines[0]
    monkeypatch.chdir(wd)  # `odtbench status` reads the same file
    rc, err = _cli(["status"], capsys)
    _one_line(rc, err, "workflows/config.yaml", needle)


def test_a_dry_run_for_a_missing_gpu_stops_with_one_line(tmp_path):
    """`device: cuda` on a machine without one: `snakemake -n` of a local workflow stops before
    any job with one line (Snakemake knows its executor once it builds the jobs; a cluster
    executor leaves the check to each job: tests/test_slurm_profile.py)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    wd = _workspace(tmp_path)
    res = _snakemake(wd, "-n", "reports/toy.html", "--config", "device=cuda")
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error: ")]
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "Exception" not in res.stderr, res.stderr[-2000:]
    assert "cuda" in lines[0] and "device: cpu" in lines[0]
    assert not (wd / "results").exists() and not (wd / "datasets").exists()


def test_a_non_utf8_summary_is_one_line_in_status_and_aggregate(finished_in_workspace, capsys):
    wd, run = finished_in_workspace
    (run / "summary.json").write_bytes(b'{"status": "compl\xe9te"}')
    rc, err = _cli(["status", "--scale", "smoke", "--suite", "toy"], capsys)
    out = _stdout[0]
    damaged = [ln for ln in out.splitlines() if ln.startswith("failed:")]
    assert rc == 0 and len(damaged) == 1 and str(run) in damaged[0] and "delete" in damaged[0], out
    rc, err = _cli(["aggregate", "--suite", "toy", "--scale", "smoke", "--reps", "10"], capsys)
    _one_line(rc, err, "summary.json", "not UTF-8", "delete")


def test_a_non_utf8_aggregates_json_is_recomputed_by_report(finished_in_workspace, capsys):
    wd, _ = finished_in_workspace
    rc, err = _cli(["aggregate", "--suite", "toy", "--scale", "smoke", "--reps", "10"], capsys)
    assert rc == 0, err
    (wd / "results/toy/aggregates.json").write_bytes(b"\xff\xfe{garbage")
    rc, err = _cli(["report", "--suite", "toy", "--scale", "smoke", "--reps", "10"], capsys)
    assert rc == 0 and "Traceback" not in err, err
    assert (wd / "reports/toy.html").is_file()
    rc, err = _cli(["figures", "--suite", "toy", "--scale", "smoke"], capsys)
    _one_line(rc, err, "aggregates.json", "odtbench aggregate")


@pytest.fixture()
def finished_in_workspace(toy_data, tmp_path, capsys, monkeypatch):
    """A workflow copy holding one finished smoke run where the workflow puts it; cwd is
    the copy."""
    from odtbench.workflow import plan as wp

    wd = _workspace(tmp_path / "wd")
    config = wp.load_config(wd / "workflows/config.yaml")
    p = wp.plan(config, "smoke", "toy")
    run = wd / wp.RUN_DIR.format(scale="smoke", suite="toy", dataset=p["datasets"][0],
                                 method="TD3+ODT", seed=p["seeds"][0])
    monkeypatch.chdir(wd)
    rc, err = _cli(["run", "--task", f"toy/{p['datasets'][0]}", "--method", "TD3+ODT", "--seed",
                    str(p["seeds"][0]), "--scale", "smoke", "--out", str(run)], capsys)
    assert rc == 0, err
    return wd, run.relative_to(wd)


# ------------------------------------------------------------------ aggregate's pair

def test_aggregate_publishes_its_pair_together(finished_in_workspace, capsys, monkeypatch):
    import errno

    wd, run = finished_in_workspace
    rc, err = _cli(["aggregate", "--suite", "toy", "--scale", "smoke", "--reps", "10"], capsys)
    assert rc == 0, err
    res = wd / "results/toy"
    old = {n: (res / n).read_bytes() for n in ("scores.csv", "aggregates.json")}
    shutil.copytree(run, run.parent / "seed7")  # the table changes
    cfg = json.loads((run.parent / "seed7/config.json").read_text())
    summ = json.loads((run.parent / "seed7/summary.json").read_text())
    cfg["seed"] = summ["seed"] = 7
    (run.parent / "seed7/config.json").write_text(json.dumps(cfg))
    (run.parent / "seed7/summary.json").write_text(json.dumps(summ))
    real_open = os.open

    def full_on_aggregates(path, flags, *a, **k):  # the disk fills up at the second file
        if "aggregates.json" in os.fsdecode(path) and flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", full_on_aggregates)
    rc, err = _cli(["aggregate", "--suite", "toy", "--scale", "smoke", "--reps", "10"], capsys)
    monkeypatch.undo()
    _one_line(rc, err, "disk full")
    assert {n: (res / n).read_bytes() for n in old} == old  # both old: never one new, one old
    assert not [p for p in res.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ summary against curve

def test_a_curve_missing_its_last_row_does_not_aggregate(finished, tmp_path, capsys):  # noqa: F811
    from odtbench.errors import OdtbenchError
    from odtbench.runfiles.results import validate_run

    lines = (finished / "curve.csv").read_text().splitlines(keepends=True)
    (finished / "curve.csv").write_text("".join(lines[:-1]))
    with pytest.raises(OdtbenchError, match="online_transitions"):
        validate_run(finished)
    runs = tmp_path / "runs" / "toy" / "bandit" / "TD3+ODT"
    shutil.copytree(finished, runs / "seed0")
    rc, err = _cli(["aggregate", "--suite", "toy", "--runs", str(tmp_path / "runs"),
                    "--out", str(tmp_path / "res"), "--reps", "10"], capsys)
    _one_line(rc, err, str(runs / "seed0"), "curve.csv")


def test_the_final_score_must_match_the_curve_to_float_rounding(finished):  # noqa: F811
    from odtbench.errors import OdtbenchError
    from odtbench.runfiles.results import validate_run

    summ = json.loads((finished / "summary.json").read_text())
    summ["final_score"] += 1e-6  # within the old 1e-3 tolerance
    (finished / "summary.json").write_text(json.dumps(summ))
    with pytest.raises(OdtbenchError, match="final_score"):
        validate_run(finished)
    summ["final_score"] -= 1e-6  # float rounding itself passes
    (finished / "summary.json").write_text(json.dumps(summ))
    validate_run(finished)


# ------------------------------------------------------------------ two workflows, one clone

# A stand-in `odtbench` for the workflow's jobs: `dataset build` writes its stats at once; `run`
# owns the run directory as the real one does (an flock on <out>/.lock) and finishes when the
# file `go` appears. A second run on an owned directory waits for the owner to end, then fails
# as the real one does: the moment at which the second workflow cleans up after its failed job
# is then the worst one, right after the first workflow's run has finished.
_STAND_IN = f"""#!{sys.executable}
import fcntl, os, pathlib, sys, time
a = sys.argv
if a[1] == "dataset":
    p = pathlib.Path(a[a.index("--stats") + 1]); p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{{}}"); sys.exit(0)
out = pathlib.Path(a[a.index("--out") + 1]); out.mkdir(parents=True, exist_ok=True)
fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    pathlib.Path("second-run-started").write_text("")
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("odtbench: error: run directory in use", file=sys.stderr); sys.exit(2)
pathlib.Path("first-run-started").write_text("")
while not pathlib.Path("go").exists():
    time.sleep(0.1)
(out / "summary.json").write_text('{{"status": "complete"}}')
"""


def _wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_a_second_workflow_on_the_same_clone_deletes_no_finished_run(tmp_path):
    wd = _workspace(tmp_path / "wd")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "odtbench").write_text(_STAND_IN)
    (bin_dir / "odtbench").chmod(0o755)
    target = "results/runs/smoke/toy/bandit/TD3+ODT/seed0/summary.json"
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    cmd = [exe, "--profile", "workflows/profiles/local", "--cores", "1", target]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=wd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    first = start()
    second = None
    try:
        assert _wait_for(lambda: (wd / "first-run-started").exists() or first.poll() is not None,
                         120), "the first workflow's run did not start"
        assert first.poll() is None, first.communicate()
        second = start()
        _wait_for(lambda: (wd / "second-run-started").exists() or second.poll() is not None, 120)
        (wd / "go").write_text("")  # the first workflow's run finishes
        _, err1 = first.communicate(timeout=120)
        _, err2 = second.communicate(timeout=120)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert first.returncode == 0, err1[-2000:]
    assert (wd / target).is_file(), err2[-3000:]  # the first one's finished run is in place
    assert second.returncode != 0 and "--unlock" in err2, err2[-2000:]  # Snakemake: locked
