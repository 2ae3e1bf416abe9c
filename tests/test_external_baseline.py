"""The "add a baseline as a rule" path (docs/adding-a-baseline.md), with the shipped example
examples/bc_external/bc.py: its files pass the contract and it appears in the scores table
next to a registered method; declaring it in the workflow config makes `run_external` plan
its runs with the documented command."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from odtbench.analysis.scores import build_scores
from odtbench.runfiles.results import run_dir, validate_run

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
TASK = "mujoco/hopper-random"
COMMAND = "python examples/bc_external/bc.py --task {task} --seed {seed} --scale {scale} --out {out}"
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))


def _load_bc():
    spec = importlib.util.spec_from_file_location("bc_external", REPO / "examples/bc_external/bc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def hopper_data(tmp_path, monkeypatch):
    from odtbench.data.build import build_dataset

    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    build_dataset(TASK, "smoke", root=root, progress=False)
    return root


def test_external_bc_run_is_valid_and_in_the_scores_table(hopper_data, tmp_path):
    runs = tmp_path / "runs"
    bc_dir = run_dir(runs, "mujoco", "hopper-random", "BC", 0)
    # the command external.smk runs, with the placeholders filled in
    argv = COMMAND.format(task=TASK, seed=0, scale="smoke", out=bc_dir).split()[2:]
    assert _load_bc().main(argv) == 0
    rec = validate_run(bc_dir)
    assert rec.summary["online_transitions"] == 120  # the suite's smoke budget
    assert list(rec.curve.phase) == ["pretrain", "online", "online", "online"]
    # a registered method's run next to it: the external one is reported like any other
    from odtbench.hyperparameters.resolve import resolve
    from odtbench_baselines import td3bc

    td3bc.run(resolve(TASK, "TD3+BC", "smoke", seed=0), run_dir(runs, "mujoco", "hopper-random",
                                                               "TD3+BC", 0))
    scores = build_scores(runs, "mujoco", expected=[("hopper-random", "BC", 1)])
    got = scores.set_index(["method", "seed"])
    assert got.loc[("BC", 0), "status"] == "complete"
    assert got.loc[("BC", 0), "final_score"] == pytest.approx(rec.summary["final_score"])
    assert got.loc[("BC", 1), "status"] == "missing"
    assert list(scores.method.unique()) == ["TD3+BC", "BC"]  # legend order, then others


def test_declaring_the_command_plans_run_external(tmp_path):
    shutil.copy2(REPO / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")
    config = yaml.safe_load((REPO / "workflows/config.yaml").read_text())
    # the two documented edits: declare the command, list the name under a suite's methods
    config["external_methods"] = {"BC": COMMAND}
    config["scales"]["smoke"]["suites"] = {
        "mujoco": {"datasets": ["hopper-random"], "methods": ["TD3+BC", "BC"], "seeds": 2}}
    (tmp_path / "workflows/config.yaml").write_text(yaml.safe_dump(config))
    res = subprocess.run([SNAKEMAKE, "-n", "-p", "reports/mujoco.html", "--config", "scale=smoke"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ODTBENCH_PROGRESS": "0"})
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = re.findall(r"rule (\w+):\n(?:.*\n)*?\s+output: (\S+)", res.stdout)
    made_by = {out: rule for rule, out in jobs if out.endswith("summary.json")}
    for seed in (0, 1):
        runs = "results/runs/smoke/mujoco/hopper-random"
        assert made_by[f"{runs}/BC/seed{seed}/summary.json"] == "run_external"
        assert made_by[f"{runs}/TD3+BC/seed{seed}/summary.json"] == "run"
        cmd = (f"python examples/bc_external/bc.py --task mujoco/hopper-random --seed {seed} "
               f"--scale smoke --out {runs}/BC/seed{seed}")
        assert cmd in res.stdout
    assert "rule report" in res.stdout  # and the analysis takes its runs like any other


def test_the_runner_of_an_external_method_refuses_to_run_it():
    from odtbench.errors import OdtbenchError
    from odtbench.hyperparameters.resolve import RunConfig
    from odtbench_baselines import external_runner

    with pytest.raises(OdtbenchError, match="external command; run it through the workflow"):
        external_runner(RunConfig(TASK, "BC", "smoke", 0, {}), "unused")
