"""The Snakemake workflow, checked with dry runs in a temporary copy: what the default and
paper configs plan, what an edit re-runs (templates -> report only, one method's
hyperparameters -> that method's runs only), lint, and one-line config errors.

The copy runs against a stand-in `odtbench` executable that writes each job's outputs at
once, so Snakemake records real metadata (params, code, inputs) without any training; and
against a copy of the package (PYTHONPATH), so touching its templates leaves the checkout alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # every test here runs Snakemake on a copy of the workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))

FAKE_ODTBENCH = f"""#!{sys.executable}
# Stand-in for the odtbench CLI: writes what each rule expects, and the arguments it got.
import json, sys
from pathlib import Path

args = sys.argv[1:]


def opt(name):
    return Path(args[args.index(name) + 1])


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if args[0] == "dataset":
    write(opt("--stats"), "{{}}")
elif args[0] == "run":
    write(opt("--out") / "summary.json", json.dumps({{"argv": args}}))
elif args[0] == "aggregate":
    write(opt("--out") / "scores.csv", "")
    write(opt("--out") / "aggregates.json", "{{}}")
elif args[0] == "figures":
    write(opt("--out") / "curves.svg", "<svg/>")
elif args[0] == "report":
    write(opt("--out"), "<html></html>")
"""


def _copy_workflow(dest: Path) -> None:
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflows", dest / "workflows")


def _snakemake(wd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=wd, env=env, capture_output=True, text=True,
                          timeout=120)


def _jobs(dry_run_output: str) -> dict[str, int]:
    """{rule: count} from a dry run's "Job stats" table ({} when nothing is to be done)."""
    if "Nothing to be done" in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def _run_outputs(dry_run_output: str) -> list[str]:
    """Every run summary a dry run's jobs write."""
    lines = re.findall(r"^\s*output: (.*)$", dry_run_output, flags=re.MULTILINE)
    return sorted({o for line in lines for o in line.split(", ")
                   if re.fullmatch(r"results/runs/\S+/summary\.json", o)})


def _executed_workflow(wd: Path, methods: list[str], seeds: int, suite: str = "toy",
                       dataset: str = "bandit") -> tuple[Path, dict]:
    """A copy of the workflow on a small smoke config of one suite, executed once with the
    stand-in."""
    _copy_workflow(wd)
    config = yaml.safe_load((REPO / "workflows/config.yaml").read_text())
    config["scale"] = "smoke"
    config["scales"]["smoke"]["suites"] = {
        suite: {"datasets": [dataset], "methods": methods, "seeds": seeds}}
    (wd / "workflows/config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "odtbench", wd / "pkg/odtbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (wd / "bin").mkdir()
    (wd / "bin/odtbench").write_text(FAKE_ODTBENCH)
    (wd / "bin/odtbench").chmod(0o755)
    env = {**os.environ, "PATH": f"{wd / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(wd / "pkg")}
    res = _snakemake(wd, f"reports/{suite}.html", "--cores", "2", "--quiet", "all", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (wd / f"reports/{suite}.html").is_file()
    return wd, env


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A copy of the workflow on a small smoke config, executed once with the stand-in."""
    return _executed_workflow(tmp_path_factory.mktemp("wf"), ["ODT", "TD3+ODT"], 2)


def test_default_config_plans_the_toy_study(tmp_path):
    """`snakemake --cores 2 reports/toy.html`: toy/bandit x the four methods x 5 seeds, at the
    default scale (standard: the toy keeps its own sizes)."""
    _copy_workflow(tmp_path)
    res = _snakemake(tmp_path, "-n", "reports/toy.html")
    assert res.returncode == 0, res.stderr[-2000:]
    runs = _run_outputs(res.stdout)
    assert {r.split("/")[5] for r in runs} == {"ODT", "DDPG+ODT", "TD3+ODT", "TD3"}
    assert len(runs) == 20 and all(r.startswith("results/runs/standard/toy/bandit/") for r in runs)
    assert _jobs(res.stdout) == {"dataset": 1, "run": 20, "aggregate": 1, "figures": 1, "report": 1}


def test_the_main_command_plans_the_standard_mujoco_suite(tmp_path):
    """`snakemake -n --cores 8 reports/mujoco.html`, no --config: the default scale (standard)
    on the datasets that show the study's effect, its 7 methods and the floor, 3 seeds."""
    _copy_workflow(tmp_path)
    res = _snakemake(tmp_path, "-n", "--cores", "8", "reports/mujoco.html")
    assert res.returncode == 0, res.stderr[-2000:]
    runs = _run_outputs(res.stdout)
    parts = [r.split("/") for r in runs]  # results/runs/<scale>/<suite>/<dataset>/<method>/seed<k>
    assert {p[2] for p in parts} == {"standard"}
    assert {p[4] for p in parts} == {"halfcheetah-random", "halfcheetah-medium-replay"}
    assert {p[5] for p in parts} == {"TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT",
                                     "TD3-scratch"}
    assert {p[6] for p in parts} == {"seed0", "seed1", "seed2"} and len(runs) == 2 * 8 * 3


def test_paper_scale_plans_every_mujoco_dataset_method_and_seed(tmp_path):
    """`methods: all` is the study's seven MuJoCo methods plus the floor, no ablation kind."""
    from odtbench.tasks import list_tasks

    _copy_workflow(tmp_path)
    res = _snakemake(tmp_path, "-n", "reports/mujoco.html", "--config", "scale=paper")
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = _jobs(res.stdout)
    n_datasets = len(list_tasks("mujoco"))
    assert n_datasets == 12
    assert jobs["dataset"] == n_datasets
    methods = {r.split("/")[5] for r in _run_outputs(res.stdout)}
    assert methods == {"TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT", "TD3-scratch"}
    assert jobs["run"] == n_datasets * len(methods) * 5
    assert jobs["aggregate"] == jobs["figures"] == jobs["report"] == 1


def _edit(path: Path) -> bytes:
    """Change a file's content (Snakemake ignores a bare touch whose checksum is unchanged)."""
    old = path.read_bytes()
    path.write_bytes(old + b"\n")
    return old


def _dry_run_after_edits(done, files: list[str]) -> dict[str, int]:
    wd, env = done
    edited = {wd / "pkg/odtbench" / f: _edit(wd / "pkg/odtbench" / f) for f in files}
    try:
        res = _snakemake(wd, "-n", "reports/toy.html", env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        return _jobs(res.stdout)
    finally:
        for path, text in edited.items():
            path.write_bytes(text)


def test_a_finished_workflow_has_nothing_to_do(done):
    """Resolved hyperparameters are stable between invocations, and the device, the live logger
    and the update path (speed) are no hyperparameters: nothing re-runs."""
    wd, env = done
    res = _snakemake(wd, "-n", "reports/toy.html", "--config", "device=cuda", "logger=tensorboard",
                     "speed=fast",
                     env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _jobs(res.stdout) == {}


def test_editing_a_template_rebuilds_only_the_report(done):
    template = sorted(p.name for p in (REPO / "odtbench/report/templates").iterdir())[0]
    # training code edited too: runs list no code, so no run job
    assert _dry_run_after_edits(done, [f"report/templates/{template}", "runcore/dt_loop.py",
                                       "methods/registry.py"]) == {"report": 1}


def test_editing_table_code_rebuilds_only_analysis_outputs(done):
    assert _dry_run_after_edits(done, ["analysis/tables.py"]) == {
        "aggregate": 1, "figures": 1, "report": 1}


def test_changing_one_methods_hyperparameter_reruns_only_its_runs(done):
    wd, env = done
    (wd / "change.yaml").write_text(yaml.safe_dump({"hyperparameters": {"TD3+ODT": {"rl_coeff": 0.2}}}))
    res = _snakemake(wd, "-n", "reports/toy.html", "--configfile", "change.yaml", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _run_outputs(res.stdout) == [f"results/runs/smoke/toy/bandit/TD3+ODT/seed{s}/summary.json"
                                        for s in (0, 1)]
    assert "params have changed" in res.stdout
    assert _jobs(res.stdout) == {"run": 2, "aggregate": 1, "figures": 1, "report": 1}
    assert "--set=rl_coeff=0.2" in res.stdout  # the override reaches the run command


@pytest.mark.parametrize("key, value", [("batch_size", 100_000_000_000), ("embed_dim", 1_000_000),
                                        ("lr_actor", 1e300), ("context_len", 100_000)])
def test_a_huge_value_stops_the_workflow_and_keeps_the_completed_runs(done, key, value):
    """Such a value would make TD3+ODT's finished runs stale (deleted, then every new job
    crashing): the config check stops first, with one line, and every run file stays as it was."""
    wd, env = done
    runs = {p: p.read_bytes() for p in (wd / "results/runs").rglob("*") if p.is_file()}
    assert any(p.parts[-3] == "TD3+ODT" and p.name == "summary.json" for p in runs)
    (wd / "huge.yaml").write_text(yaml.safe_dump({"hyperparameters": {"TD3+ODT": {key: value}}}))
    res = _snakemake(wd, "reports/toy.html", "--cores", "1", "--configfile", "huge.yaml", env=env)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("odtbench: error: ")]
    assert len(errors) == 1 and f"hyperparameter {key}=" in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert {p: p.read_bytes() for p in (wd / "results/runs").rglob("*") if p.is_file()} == runs


def test_a_dt_only_preset_change_schedules_no_mlp_run(tmp_path):
    """The MLP baselines resolve only their own keys, so editing a DT-family value (the toy
    preset's transformer width) re-runs the DT method's runs and not TD3+BC's."""
    wd, env = _executed_workflow(tmp_path, ["ODT", "TD3+BC"], 1)
    config_py = wd / "pkg/odtbench/tasks.py"  # the toy's rows live with its task
    text = config_py.read_text()
    assert text.count('"embed_dim": 64, "n_layer": 1') == 1  # the TOY preset's row
    config_py.write_text(text.replace('"embed_dim": 64, "n_layer": 1', '"embed_dim": 32, "n_layer": 1'))
    res = _snakemake(wd, "-n", "reports/toy.html", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _run_outputs(res.stdout) == ["results/runs/smoke/toy/bandit/ODT/seed0/summary.json"]
    assert _jobs(res.stdout) == {"run": 1, "aggregate": 1, "figures": 1, "report": 1}


def test_lint_is_clean(tmp_path):
    _copy_workflow(tmp_path)
    res = _snakemake(tmp_path, "--lint")
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.mark.parametrize("args, config_text, needle", [
    (["--config", "scale=huge"], None, "scale: 'huge' is not one of ['smoke', 'quick', 'standard', 'paper']"),
    (["--config", "methods=[ODT,nope]"], None, "unknown method 'nope'; valid choices: "),
    (["--config", "colour=red"], None, "'colour' was unexpected); valid keys: scale, seeds"),
    (["--config", "logger=mlflow"], None, "logger: 'mlflow' is not one of ['none', 'tensorboard'"),
    ([], "scale: [quick\n", "workflows/config.yaml line 2, column 1: not valid YAML"),
])
def test_bad_config_stops_with_one_line(tmp_path, args, config_text, needle):
    _copy_workflow(tmp_path)
    if config_text is not None:
        (tmp_path / "workflows/config.yaml").write_text(config_text)
    res = _snakemake(tmp_path, "-n", "reports/toy.html", *args)
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("odtbench: error: "), res.stderr
    assert needle in errors[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake").exists()
