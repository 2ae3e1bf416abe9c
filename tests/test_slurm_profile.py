"""The SLURM profile's job submissions, without a cluster: a stand-in `sbatch` on PATH records
what Snakemake's SLURM executor asks for (then refuses the job, so nothing runs), and the
test checks each run job's request against the rule's declarations. The real scheduler is
exercised by scripts/slurm_single_node.sh (docs/cluster.md)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflows" / "profiles" / "slurm"
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))

pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")

FAKE_SBATCH = f"""#!{sys.executable}
# Records its arguments (one JSON line per call) and refuses the job: nothing runs.
import json, os, sys
with open(os.environ["SBATCH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("sbatch: error: stand-in sbatch (test) accepts no jobs", file=sys.stderr)
sys.exit(1)
"""
FAKE_QUIET = "#!/bin/sh\nexit 0\n"  # sacct, squeue, sinfo, scontrol: an empty cluster


@pytest.fixture()
def cluster(tmp_path):
    """A workflow copy whose toy dataset is already built, and a PATH with the stand-ins."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    shutil.copytree(REPO / "workflows", work / "workflows")
    stats = work / "datasets" / "stats" / "smoke" / "toy" / "bandit.json"
    stats.parent.mkdir(parents=True)
    stats.write_text("{}")  # the run jobs are ready at once
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_QUIET), ("squeue", FAKE_QUIET),
                       ("sinfo", FAKE_QUIET), ("scontrol", FAKE_QUIET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "sbatch.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               SBATCH_LOG=str(log))
    return work, env, log


def _submissions(work: Path, env: dict, log: Path, *config: str) -> list[list[str]]:
    # toy's dataset is built, mujoco's is not: 8 toy run jobs and 1 mujoco dataset job are
    # ready at once. Status checks start after 1 s (the stand-in refuses every job anyway).
    cmd = [SNAKEMAKE, "--profile", str(PROFILE), "--slurm-no-account",
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
           "--seconds-between-status-checks", "1", "--retries", "0", "--jobs", "20",
           "reports/toy.html", "reports/mujoco.html", "--config", "scale=smoke", *config]
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode != 0, "the stand-in sbatch refuses every job"
    assert log.exists(), p.stderr[-2000:]
    return [json.loads(line) for line in log.read_text().splitlines()]


def _flags(argv: list[str]) -> dict[str, str]:
    """sbatch arguments as {flag: value} ("--gpus=1" and "--mem 1000" alike)."""
    out, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if "=" in a and a.startswith("-"):
            k, v = a.split("=", 1)
            out[k] = v
        elif a.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            out[a] = argv[i + 1]
            i += 1
        else:
            out[a] = ""
        i += 1
    return out


def _target(flags: dict[str, str]) -> str:
    """The job the sbatch call runs: the wrapped Snakemake command's --target-jobs value."""
    wrapped = shlex.split(flags["--wrap"])
    return wrapped[wrapped.index("--target-jobs") + 1]


def test_each_job_asks_slurm_for_what_its_rule_declares(cluster):
    work, env, log = cluster
    calls = [_flags(c) for c in _submissions(work, env, log, "device=cuda")]
    smoke = yaml.safe_load((REPO / "workflows/config.yaml").read_text())["scales"]["smoke"]["suites"]
    runs = [f for f in calls if _target(f).startswith("run:")]
    datasets = [f for f in calls if _target(f).startswith("dataset:")]
    # toy at the smoke scale: 4 methods x 2 seeds, each a GPU job (device=cuda)
    assert len(runs) == 8 and len(datasets) == 1, [_target(f) for f in calls]
    assert sorted(_target(f).split("seed=")[1][0] for f in runs) == ["0"] * 4 + ["1"] * 4
    for f in runs:
        assert f["--gpus"] == "1"
        assert f["--mem"] == str(smoke["toy"]["mem_mb"])
        assert f["-t"] == str(smoke["toy"]["runtime"])
        assert f["--cpus-per-task"] == "1"  # threads: 1, so one core per run
        assert "slurm-jobstep" in f["--wrap"]  # the job runs Snakemake's SLURM job step
    # building a dataset is CPU work: no GPU, whatever the runs' device
    (ds,) = datasets
    assert "--gpus" not in ds and ds["--ntasks"] == "1" and ds["--cpus-per-task"] == "1"
    assert ds["--mem"] == str(smoke["mujoco"]["mem_mb"]) and ds["-t"] == str(smoke["mujoco"]["runtime"])
    assert all("-A" not in f for f in calls)  # no account on a cluster without accounting


def test_profile_keys_and_single_node_script_parse():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    defaults = dict(item.split("=", 1) for item in profile["default-resources"])
    assert int(defaults["mem_mb"]) > 0 and int(defaults["runtime"]) > 0
    script = REPO / "scripts" / "slurm_single_node.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_a_dry_run_for_the_cluster_plans_gpu_runs_without_a_gpu_here(cluster):
    """`snakemake -n --profile workflows/profiles/slurm ... device=cuda` on a login node without
    a GPU plans the runs; the same dry run for local jobs stops with one line
    (tests/test_faults_lastmile.py)."""
    work, env, _ = cluster
    p = subprocess.run([SNAKEMAKE, "-n", "--profile", str(PROFILE), "reports/toy.html",
                        "--config", "scale=smoke", "device=cuda"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "odtbench: error" not in p.stderr and "rule run:" in p.stdout
