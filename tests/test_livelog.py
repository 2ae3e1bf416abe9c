"""Optional live logging (odtbench/runfiles/livelog.py): fed by the recorder from the rows it writes,
off by default, never stops a run, and a missing extra stops before any compute."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pytest

from odtbench import cli
from odtbench.runfiles import livelog
from odtbench.runfiles.livelog import LOGGER_ENV, LiveLogger

ARGS = ["run", "--task", "toy/bandit", "--method", "TD3+ODT", "--seed", "0", "--scale", "smoke"]


def test_a_logger_whose_package_is_missing_stops_before_the_run(toy_data, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setattr(livelog.importlib.util, "find_spec", lambda name: None)
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--out", str(out), "--logger", "tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'odtbench[tensorboard]'" in err[0], err
    assert not out.exists()  # nothing written, nothing computed
    assert cli.main([*ARGS, "--out", str(out), "--logger", "mlflow"]) == 2
    assert "logger" in capsys.readouterr().err and not out.exists()


def test_the_default_is_no_logger_recorded_in_config_json(toy_data, tmp_path, monkeypatch):
    monkeypatch.delenv(LOGGER_ENV, raising=False)
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["provenance"]["logger"] == "none"
    assert not (out / livelog.TB_DIR).exists()


def test_a_failing_logger_warns_once_and_the_run_goes_on(tmp_path, caplog):
    import logging

    log = logging.getLogger("test.livelog")
    live = LiveLogger("tensorboard", tmp_path, log)

    class Broken:
        def curve(self, row):
            raise OSError("disk full")

    live._sink = Broken()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="test.livelog"):
        for _ in range(3):
            live.curve_row({"phase": "online", "online_transitions": 1, "gradient_steps": 1,
                            "score_mean": 1.0})
    warnings = [r for r in caplog.records if "live logger tensorboard failed" in r.getMessage()]
    assert len(warnings) == 1 and "goes on without it" in warnings[0].getMessage()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard not installed (pip install 'odtbench[tensorboard]')")
def test_a_smoke_run_with_tensorboard_writes_the_curves_scalars(toy_data, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv(LOGGER_ENV, raising=False)
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--out", str(out), "--logger", "tensorboard"]) == 0
    assert json.loads((out / "config.json").read_text())["provenance"]["logger"] == "tensorboard"
    events = list((out / livelog.TB_DIR).glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(out / livelog.TB_DIR))
    acc.Reload()
    with open(out / "curve.csv") as fh:
        curve = list(csv.DictReader(fh))
    online = [r for r in curve if r["phase"] == "online"]
    got = [(e.step, e.value) for e in acc.Scalars("online/score_mean")]
    want = [(int(r["online_transitions"]), float(r["score_mean"])) for r in online]
    assert len(got) == len(want) == 3
    for (s1, v1), (s2, v2) in zip(got, want, strict=True):
        assert s1 == s2 and v1 == pytest.approx(v2, rel=1e-6)  # float32 in the event file
    pre = [r for r in curve if r["phase"] == "pretrain"]
    assert [e.step for e in acc.Scalars("pretrain/score_mean")] == [int(r["gradient_steps"]) for r in pre]
    with open(out / "diagnostics.csv") as fh:
        diag = list(csv.DictReader(fh))
    assert len(acc.Scalars("diagnostics/critic_loss")) == sum(r["critic_loss"] != "" for r in diag)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None,
                    reason="wandb not installed (pip install 'odtbench[wandb]')")
def test_a_smoke_run_with_wandb_offline_writes_a_local_run(toy_data, tmp_path, monkeypatch):
    monkeypatch.delenv(LOGGER_ENV, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--out", str(out), "--logger", "wandb-offline"]) == 0
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, list((out / "wandb").rglob("*"))
    assert "live logger" not in (out / "log.txt").read_text()  # it did not fail
    assert sys.modules.get("wandb") is not None
