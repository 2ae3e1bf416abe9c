"""Faults that lose nothing (issue 20): one tiny offline test per fault a careful lab makes by
accident. Each states the promise: one line naming the problem and the fix, a non-zero exit,
no traceback, nothing completed lost, and a result that says which code made it.

Read-only directories: the tests run as root in CI, where file modes do not stop writes, so
`_read_only` makes the file system refuse writes below a directory the way a read-only mount
does (EROFS from the same os/io calls), whoever runs the tests.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from odtbench import cli

TASK = ["--task", "toy/bandit", "--method", "TD3+ODT", "--seed", "0", "--scale", "smoke"]


_stdout: list[str] = [""]  # stdout of the last _cli call


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `odtbench ARGV`; an exception escaping main fails the test
    (it would be a traceback)."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    _stdout[0] = captured.out
    return rc, captured.err


def _one_line(rc: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("odtbench: error: ")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


def _run(out: Path, capsys, *extra: str) -> tuple[int, str]:
    return _cli(["run", *TASK, "--out", str(out), *extra], capsys)


@pytest.fixture()
def finished(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _run(out, capsys)
    assert rc == 0, err
    return out


def _read_only(monkeypatch, directory: Path) -> None:
    """Refuse writes below `directory` with EROFS, as a read-only mount does."""
    directory = directory.resolve()

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(directory)
        except (TypeError, ValueError):
            return False

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open = builtins.open, os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def fake_open(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & writes:
            refuse(path)
        return real_os_open(path, flags, *a, **k)

    for mod, name, real in ((os, "mkdir", os.mkdir), (os, "unlink", os.unlink),
                            (os, "replace", os.replace), (os, "rename", os.rename),
                            (os, "rmdir", os.rmdir)):
        def fake(path, *a, _real=real, **k):
            if inside(path):
                refuse(path)
            return _real(path, *a, **k)
        monkeypatch.setattr(mod, name, fake)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)


# ------------------------------------------------------------------ 1. forced re-runs

def test_1_forced_rerun_starts_from_nothing_and_records_its_code(finished, capsys):
    """`snakemake --forcerun run` deletes summary.json, then runs the job: it must retrain,
    not rewrite the finished checkpoint's old numbers, and config.json must name the code."""
    ckpt = finished / "checkpoint" / "state.pt"
    payload = torch.load(ckpt, weights_only=False)
    payload["state"]["curve"][-1]["score_mean"] = 12345.0  # "the old code's numbers"
    torch.save(payload, ckpt)
    cfg = json.loads((finished / "config.json").read_text())
    cfg["provenance"]["git_commit"] = "0ld"
    (finished / "config.json").write_text(json.dumps(cfg))
    (finished / "summary.json").unlink()  # what Snakemake does before a forced job
    rc, err = _run(finished, capsys, "--replace-stale")
    assert rc == 0, err
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["final_score"] != 12345.0
    prov = json.loads((finished / "config.json").read_text())["provenance"]
    assert prov["git_commit"] != "0ld" and prov["code_sha256"].startswith("sha256:")


def _killed_run(out):
    """A toy smoke run SIGKILLed after update 12: its checkpoint path."""
    env = dict(os.environ, OMP_NUM_THREADS="1", ODTBENCH_KILL_AT_UPDATE="12")
    p = subprocess.run([sys.executable, "-m", "odtbench.cli", "run", *TASK, "--out", str(out)],
                       env=env, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL
    return out / "checkpoint" / "state.pt"


def test_1_checkpoint_of_other_code_is_not_resumed(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = _killed_run(out)
    payload = torch.load(ckpt, weights_only=False)
    payload["odtbench_code"] = "sha256:older-code"
    payload["state"]["curve"].append({**payload["state"]["curve"][-1], "score_mean": 12345.0})
    torch.save(payload, ckpt)
    rc, err = _run(out, capsys)
    assert rc == 0, err
    scores = [ln.split(",")[7] for ln in (out / "curve.csv").read_text().splitlines()[1:]]
    assert "12345.0" not in scores


# ------------------------------------------------------------------ 2. early divergence

def test_2_divergence_before_first_evaluation_is_reported(toy_data, tmp_path, capsys):
    from odtbench.analysis.suite import aggregate_suite
    from odtbench.report import render_report
    from odtbench.runfiles.results import validate_run

    out = tmp_path / "runs" / "toy" / "bandit" / "TD3+ODT" / "seed0"
    rc, err = _run(out, capsys, "--set", "reward_scale=1e300")  # non-finite losses at once
    assert rc == 0, err
    rec = validate_run(out)
    assert rec.status == "diverged" and len(rec.curve) == 0
    aggregate_suite("toy", tmp_path / "runs", tmp_path / "results", reps=10)
    html = render_report("toy", tmp_path / "runs", tmp_path / "toy.html",
                         aggregates_dir=tmp_path / "results", reps=10,
                         dataset_stats=tmp_path / "none", benchmarks_root=tmp_path / "none",
                         figures_dir=tmp_path / "figs")
    assert "diverged" in Path(html).read_text()


# ------------------------------------------------------------------ 3. run-directory lock

def test_3_second_run_on_a_locked_directory_stops_naming_the_owner(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    # another process owns the directory (an flock on .lock, and its owner record)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, json, os, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'host': os.uname().nodename}).encode())\n"
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, err = _run(out, capsys, "--set", "rl_coeff=0.2")
        _one_line(rc, err, "in use by process", str(holder.pid))
        assert not (out / "config.json").exists() and not (out / "curve.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    # the owner was killed: its lock is stale and the next run takes it over
    rc, err = _run(out, capsys)
    assert rc == 0, err
    assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


# ------------------------------------------------------------------ 4. hyperparameter values

@pytest.mark.parametrize("item, needle", [
    ("lr_actor=fast", "lr_actor='fast'"), ("batch_size=abc", "batch_size='abc'"),
    ("batch_size=-8", "batch_size=-8"), ("lr_actor=-1", "lr_actor=-1"),
    ("online_budget=-100", "online_budget=-100"), ("batch_size=8.5", "batch_size=8.5"),
    ("stochastic=1", "stochastic=1"), ("rl_kind=a2c", "rl_kind='a2c'"),
])
def test_4_bad_hyperparameter_values_stop_before_anything_is_written(
        item, needle, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _run(out, capsys, "--set", item)
    _one_line(rc, err, needle, "must be")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_4_unavailable_device_is_one_line(toy_data, tmp_path, capsys):
    rc, err = _run(tmp_path / "run", capsys, "--device", "cuda")
    _one_line(rc, err, "no usable CUDA GPU", "--device cpu")
    assert not (tmp_path / "run").exists()


def _workflow_copy(wd: Path, **config_changes) -> None:
    import yaml

    repo = Path(__file__).resolve().parents[1]
    shutil.copy2(repo / "Snakefile", wd / "Snakefile")
    shutil.copytree(repo / "workflows", wd / "workflows")
    cfg = yaml.safe_load((wd / "workflows/config.yaml").read_text())
    cfg.update(config_changes)
    (wd / "workflows/config.yaml").write_text(yaml.safe_dump(cfg))


def _snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    return subprocess.run([exe, *args], cwd=wd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("changes, needle", [
    ({"hyperparameters": {"TD3+ODT": {"batch_size": -8}}}, "batch_size=-8"),
    ({"hyperparameters": {"ODT": {"lr_actor": "fast"}}}, "lr_actor='fast'"),
])
def test_4_workflow_config_check_rejects_bad_values(changes, needle, tmp_path):
    """Even `snakemake -n` stops: before any job deletes earlier runs' outputs."""
    _workflow_copy(tmp_path, scale="smoke", **changes)
    res = _snakemake(tmp_path, "-n", "reports/toy.html")
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error: ")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr


@pytest.mark.slow  # a workflow run
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_4_workflow_with_an_absent_device_stops_before_any_job(tmp_path):
    _workflow_copy(tmp_path, scale="smoke", device="cuda")
    env_bin = tmp_path / "bin"
    env_bin.mkdir()
    (env_bin / "odtbench").write_text(f"#!{sys.executable}\nopen('job-ran', 'w')\n")
    (env_bin / "odtbench").chmod(0o755)
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    res = subprocess.run([exe, "--cores", "1", "datasets/stats/smoke/toy/bandit.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{env_bin}{os.pathsep}{os.environ['PATH']}"})
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error: ")]
    assert res.returncode != 0 and len(lines) == 1 and "no usable CUDA GPU" in lines[0], res.stderr
    assert not (tmp_path / "job-ran").exists()


# ------------------------------------------------------------------ 5. files and I/O

@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_5_damaged_checkpoint_is_set_aside_and_the_run_starts_over(damage, toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    ckpt = _killed_run(out)
    data = ckpt.read_bytes()
    ckpt.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    rc, err = _run(out, capsys)
    assert rc == 0 and "Traceback" not in err, err
    assert f"checkpoint {ckpt} is corrupt" in err and len(list(out.glob("checkpoint.corrupt-*"))) == 1


@pytest.mark.parametrize("name", ["summary.json", "config.json", "curve.csv"])
def test_5_non_utf8_run_files_are_one_line(name, finished, capsys):
    from odtbench.errors import OdtbenchError
    from odtbench.runfiles.results import validate_run

    (finished / name).write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(OdtbenchError, match="not UTF-8"):
        validate_run(finished)


def test_5_corrupt_summary_advice_works(finished, capsys):
    (finished / "summary.json").write_text("{not json")
    rc, err = _run(finished, capsys)
    _one_line(rc, err, "summary.json", f"delete {finished}")
    shutil.rmtree(finished)  # the advice
    rc, err = _run(finished, capsys)
    assert rc == 0, err


def test_5_read_only_out_is_one_line(toy_data, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    rc, err = _run(ro / "run", capsys)
    _one_line(rc, err, "read-only", str(ro / "run"))


def test_5_read_only_finished_run_is_reported(finished, capsys, monkeypatch):
    import logging

    # as in a new process: no log file already open from the fixture's run
    for h in logging.getLogger(f"odtbench.run.{finished}").handlers[:]:
        h.close()
        logging.getLogger(f"odtbench.run.{finished}").removeHandler(h)
    _read_only(monkeypatch, finished)
    rc, err = _run(finished, capsys)
    assert rc == 0, err
    assert "complete, final score" in _stdout[0]


def test_5_read_only_aggregate_output_is_one_line(finished, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs" / "toy" / "bandit" / "TD3+ODT"
    runs.mkdir(parents=True)
    shutil.copytree(finished, runs / "seed0")
    ro = tmp_path / "results"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    rc, err = _cli(["aggregate", "--suite", "toy", "--runs", str(tmp_path / "runs"),
                    "--out", str(ro / "toy"), "--reps", "10"], capsys)
    _one_line(rc, err, "read-only")


def test_5_read_only_datasets_root_is_one_line(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(ro))
    _read_only(monkeypatch, ro)
    rc, err = _cli(["dataset", "build", "--task", "toy/bandit", "--scale", "smoke"], capsys)
    _one_line(rc, err, "read-only", "MINARI_DATASETS_PATH")


def test_5_full_disk_says_disk_full_and_leaves_no_temp_file(toy_data, tmp_path):
    """A file-size limit fails writes the way a full disk does (EFBIG instead of ENOSPC)."""
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # let config.json, curve.csv and the log through, stop at the first checkpoint
    limit = 48 * 1024

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-m", "odtbench.cli", "run", *TASK, "--out", str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=small_disk)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("odtbench: error: ")]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "disk full" in lines[0]
    assert not [f for f in out.rglob("*") if f.name.endswith(".tmp")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)  # space freed
    assert p.returncode == 0, p.stderr


def test_5_truncated_dataset_fails_build(toy_data, capsys):
    from odtbench.data.build import dataset_id

    data = toy_data / dataset_id("toy/bandit", "smoke") / "data"
    h5 = next(data.glob("*.hdf5"))
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    rc, err = _cli(["dataset", "build", "--task", "toy/bandit", "--scale", "smoke",
                    "--stats", str(toy_data.parent / "stats.json")], capsys)
    _one_line(rc, err, "corrupt or truncated")
    assert not (toy_data.parent / "stats.json").exists()


def test_5_dataset_without_build_record_is_not_regenerated(toy_data, capsys):
    from odtbench.data.build import INFO_FILE, dataset_id

    ds = toy_data / dataset_id("toy/bandit", "smoke")
    (ds / INFO_FILE).unlink()
    before = {p: p.stat().st_mtime_ns for p in ds.rglob("*") if p.is_file()}
    rc, err = _cli(["dataset", "build", "--task", "toy/bandit", "--scale", "smoke"], capsys)
    _one_line(rc, err, INFO_FILE, "--force")
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------ 6. writes

def test_6_stray_temp_files_are_cleaned_on_start(toy_data, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    strays = [out / ".curve.csv.77-0a1b2c3d.tmp", out / "checkpoint" / ".state.pt.9-aa00bb11.tmp"]
    for f in strays:
        f.write_bytes(b"half a file")
    rc, err = _run(out, capsys)
    assert rc == 0, err
    assert not any(f.exists() for f in strays)


def test_6_stray_dataset_write_dirs_are_cleaned(tmp_path):
    from odtbench.data.build import build_dataset

    root = tmp_path / "minari"
    stray = root / ".tmp-write-abcd1234"
    (stray / "odtbench").mkdir(parents=True)
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stray, (day_ago, day_ago))
    build_dataset("toy/bandit", "smoke", root=root, progress=False)
    assert not stray.exists()


def test_6_checkpoints_are_fsynced_under_a_unique_temp_name(tmp_path, monkeypatch):
    from odtbench.runfiles.checkpoint import save_atomic

    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    (tmp_path / "state.pt.tmp").write_bytes(b"another writer's temp file")
    save_atomic({"state": {"x": 1}}, tmp_path / "state.pt")
    assert synced  # file (and directory) flushed to disk before the rename
    assert (tmp_path / "state.pt.tmp").read_bytes() == b"another writer's temp file"
    assert torch.load(tmp_path / "state.pt", weights_only=False)["state"] == {"x": 1}


# ------------------------------------------------------------------ 7. killed workflow

@pytest.mark.slow  # a workflow run, killed and rerun
def test_7_plain_rerun_after_a_killed_workflow_works(tmp_path):
    """kill -9 of Snakemake mid-job leaves its locks and an incomplete job; the plain rerun
    with the local profile must work (no --unlock, no --rerun-incomplete): no other workflow
    runs in the directory, so it clears the dead one's locks (common.smk, hold_workflow_lock)."""
    _workflow_copy(tmp_path, scale="smoke")
    target = "datasets/stats/smoke/toy/bandit.json"
    env_bin = tmp_path / "bin"
    env_bin.mkdir()
    (env_bin / "odtbench").write_text(  # stand-in: the dataset job hangs while SLOW is set
        f"#!{sys.executable}\nimport os, sys, pathlib, time\na = sys.argv\n"
        "p = pathlib.Path(a[a.index('--stats') + 1]); p.parent.mkdir(parents=True, exist_ok=True)\n"
        "p.write_text('partial')\npathlib.Path('started').write_text('')\n"
        "time.sleep(120 if os.environ.get('SLOW') else 0)\np.write_text('{}')\n")
    (env_bin / "odtbench").chmod(0o755)
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    cmd = [exe, "--profile", "workflows/profiles/local", "--cores", "1", target]
    env = {**os.environ, "PATH": f"{env_bin}{os.pathsep}{os.environ['PATH']}"}
    killed = subprocess.Popen(cmd, cwd=tmp_path, env={**env, "SLOW": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        for _ in range(1200):  # wait for the job to start (at most 120 s)
            if (tmp_path / "started").exists() or killed.poll() is not None:
                break
            time.sleep(0.1)
        assert (tmp_path / "started").exists()
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert list((tmp_path / ".snakemake/locks").glob("*.lock"))  # the killed one's locks
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "removed the Snakemake locks of a killed workflow" in res.stderr
    assert (tmp_path / target).read_text() == "{}"
