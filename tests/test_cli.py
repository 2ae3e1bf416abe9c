"""The `odtbench` command: help, listing, one-line errors that write nothing, the stale-run
guard, and one tiny real dataset build + run through the CLI."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from odtbench import cli
from odtbench.methods.registry import MethodSpec


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv", [[], ["run"], ["dataset"], ["dataset", "build"],
                                  ["dataset", "stats"], ["list"], ["aggregate"], ["figures"],
                                  ["report"], ["status"]])
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: odtbench")


def test_list_names_the_registries(capsys):
    rc, out, _ = _run(["list", "methods"], capsys)
    assert rc == 0
    listed = [line.split()[0] for line in out.splitlines()]
    # every method of the study, in its legend order (baselines register themselves)
    study = ["TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT"]
    assert [m for m in listed if m in study] == study
    _, out, _ = _run(["list", "scales"], capsys)
    assert [line.split()[0] for line in out.splitlines()] == ["smoke", "quick", "standard", "paper"]
    _, out, _ = _run(["list", "tasks"], capsys)
    assert "toy/bandit" in out.split() and "mujoco/hopper-random" in out.split()
    _, out, _ = _run(["list"], capsys)
    assert {"methods:", "tasks:", "suites:", "scales:"} <= set(out.split())


@pytest.mark.parametrize("kind", ["methods", "tasks", "suites"])
def test_list_columns_are_aligned(kind, capsys):
    """Every column starts at the same place on every line (env ids vary in length)."""
    _, out, _ = _run(["list", kind], capsys)
    lines = out.splitlines()
    second = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
    assert len(second) == 1, out
    if kind == "tasks":
        third = {line.index(line.split()[2], len(line.split()[0]) + len(line.split()[1]))
                 for line in lines}
        assert len(third) == 1, out


def test_run_help_documents_seed_and_threads(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--seed SEED seed of the run" in text and "--threads N torch CPU threads (default 1" in text


RUN = ["run", "--task", "toy/bandit", "--method", "TD3+ODT", "--seed", "0", "--scale", "smoke"]


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


@pytest.mark.parametrize("argv, needle", [
    (_replace(RUN, "--method", "nope"), "unknown method 'nope'; valid choices: AWAC, AWR, DDPG+ODT, IQL, IQL+ODT, ODT, PDT, PPO, SAC, SAC+ODT, TD3, TD3+BC, TD3+ODT, TD3-scratch"),
    (_replace(RUN, "--task", "toy/nope"), "unknown task 'toy/nope'; valid choices: "),
    (_replace(RUN, "--scale", "huge"), "unknown scale 'huge'; valid choices: paper, quick, smoke"),
    ([*RUN, "--set", "lr_actor"], "malformed --set 'lr_actor'"),
    ([*RUN, "--set", "no_such_key=1"], "unknown hyperparameter 'no_such_key'; valid choices: "),
    (_replace(RUN, "--seed", "-1"), "-1 is negative"),
    (["list", "things"], "invalid choice: 'things'"),
    (["aggregate", "--suite", "nope"], "unknown suite 'nope'; valid choices: "),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse errors leave through SystemExit
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert err.startswith("odtbench: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert list(tmp_path.iterdir()) == []  # no run directory, no results


@pytest.fixture
def fake_runner(monkeypatch):
    """Replace the method's runner by one that records its calls and writes a summary."""
    calls = []

    def runner(cfg, out_dir):
        out = Path(out_dir)
        calls.append((cfg, out, sorted(p.name for p in out.iterdir()) if out.exists() else None))
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"status": "complete", "final_score": 1.0}))
        return {"status": "complete", "final_score": 1.0}

    monkeypatch.setattr(MethodSpec, "load_runner", lambda self: runner)
    return calls


def _old_run(out: Path, **changes) -> None:
    """A run directory as a runner leaves it: config.json (+ a checkpoint)."""
    from odtbench.hyperparameters.resolve import resolve

    cfg = resolve("toy/bandit", "TD3+ODT", "smoke", 0)
    hp = {**cfg.hyperparameters, **changes}
    from odtbench.runfiles.checkpoint import save_atomic

    save_atomic({"state": {"phase": "online"}}, out / "checkpoint" / "state.pt")  # unfinished
    (out / "config.json").write_text(json.dumps(
        {"suite": "toy", "dataset": "bandit", "dataset_info": {"id": "x"}, "method": "TD3+ODT", "seed": 0, "scale": "smoke",
         "hyperparameters": hp}))


def test_default_run_dir_has_the_scale_and_runner_gets_the_resolved_config(fake_runner, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run([*RUN, "--set", "rl_coeff=0.25", "--set", "rl_kind=ddpg"], capsys)
    assert rc == 0, err
    (cfg, out_dir, before), = fake_runner
    assert out_dir == Path("results/runs/smoke/toy/bandit/TD3+ODT/seed0")
    assert before == [".lock"]  # the run-directory lock, taken before the runner starts
    assert cfg.hyperparameters["rl_coeff"] == 0.25 and cfg.hyperparameters["rl_kind"] == "ddpg"
    assert cfg.sources["rl_coeff"] == "user override"
    assert "complete, final score 1.00" in out


def test_same_hyperparameters_resume_in_place(fake_runner, tmp_path, capsys):
    _old_run(tmp_path / "r")
    rc, _, err = _run([*RUN, "--out", str(tmp_path / "r")], capsys)
    assert rc == 0, err
    assert fake_runner[0][2] == [".lock", "checkpoint", "config.json"]  # left for the runner to resume


def test_stale_run_directory_is_refused_then_replaced(fake_runner, tmp_path, capsys):
    out = tmp_path / "r"
    _old_run(out, lr_actor=0.5)
    rc, _, err = _run([*RUN, "--out", str(out)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "hyperparameter lr_actor 0.5 (now 0.001)" in err and "--replace-stale" in err
    assert fake_runner == [] and (out / "checkpoint" / "state.pt").exists()

    rc, _, err = _run([*RUN, "--out", str(out), "--replace-stale"], capsys)
    assert rc == 0
    assert "discarding stale run" in err
    assert fake_runner[0][2] == [".lock"]  # the old checkpoint was gone before the runner started


def test_device_is_refused_by_a_runner_without_one(fake_runner, tmp_path, capsys):
    rc, _, err = _run([*RUN, "--out", str(tmp_path / "r"), "--device", "cuda"], capsys)
    assert rc == 2 and "runs on the CPU only" in err
    assert not (tmp_path / "r").exists()


def test_aggregate_picks_the_scale_runs_root_and_reps(monkeypatch, capsys):
    seen = {}

    def fake(suite, runs_root, out_dir, reps, allow_mixed):
        seen.update(suite=suite, runs=Path(runs_root), out=Path(out_dir), reps=reps)
        return Path(out_dir)

    # a stand-in module: the real one imports matplotlib and rliable (seconds)
    monkeypatch.setitem(sys.modules, "odtbench.analysis.suite",
                        types.SimpleNamespace(DEFAULT_REPS=123, aggregate_suite=fake))
    assert _run(["aggregate", "--suite", "toy", "--scale", "paper"], capsys)[0] == 0
    assert seen == {"suite": "toy", "runs": Path("results/runs/paper"), "out": Path("results/toy"),
                    "reps": cli.PAPER_REPS}
    assert _run(["aggregate", "--suite", "toy", "--runs", "elsewhere", "--reps", "50"], capsys)[0] == 0
    assert seen["runs"] == Path("elsewhere") and seen["reps"] == 50
    assert _run(["aggregate", "--suite", "toy", "--scale", "smoke"], capsys)[0] == 0
    assert seen["runs"] == Path("results/runs/smoke") and seen["reps"] == 123


@pytest.mark.slow  # a dataset build and a run
def test_dataset_build_and_a_real_tiny_run(tmp_path, monkeypatch, capsys):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    rc, out, err = _run(["dataset", "build", "--task", "toy/bandit", "--scale", "smoke",
                         "--stats", "stats/toy.json"], capsys)
    assert rc == 0, err
    info = json.loads(Path("stats/toy.json").read_text())
    assert info["stats"]["episodes"] == 128 and info["checksum"].startswith("sha256:")
    assert json.loads(out)["episodes"] == 128

    rc, out, err = _run([*RUN, "--set", "pretrain_updates=2", "--set", "max_online_iters=1",
                         "--set", "online_budget=64"], capsys)
    assert rc == 0, err
    run_dir = Path("results/runs/smoke/toy/bandit/TD3+ODT/seed0")
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert summary["status"] == "complete" and summary["scale"] == "smoke"
    assert config["hyperparameters"]["pretrain_updates"] == 2
    assert f"-> {run_dir}" in out

    # a run made on other data (e.g. before `dataset build --force`) is stale as well
    config["dataset_info"]["checksum"] = "sha256:0"
    (run_dir / "config.json").write_text(json.dumps(config))
    rc, _, err = _run([*RUN, "--set", "pretrain_updates=2", "--set", "max_online_iters=1",
                       "--set", "online_budget=64"], capsys)
    assert rc == 2 and "dataset checksum sha256:0 (now sha256:" in err
