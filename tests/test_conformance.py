"""One conformance test that every registered method passes: a smoke run writes run files
that satisfy the contract, and a run killed mid-way resumes to the same results."""

from __future__ import annotations

import json

import pytest

from odtbench.hyperparameters.resolve import resolve
from odtbench.methods import get_method, list_methods
from odtbench.runcore import core as runcore  # the one update counter and its kill hook
from odtbench.runfiles.results import validate_run

TASK = "mujoco/hopper-random"
# Every loop counts its updates through RunCore.count_update; 25 falls after the first
# checkpoint of every method at the smoke scale.
KILL_AT = 25
METHODS = [m for m in list_methods() if get_method(m).family != "external"]


class Killed(Exception):
    pass


def _run(method: str, out) -> dict:
    return get_method(method).load_runner()(resolve(TASK, method, "smoke", seed=0), out)


def _without_wall_time(run_dir) -> tuple[dict, object]:
    rec = validate_run(run_dir)
    summary = {k: v for k, v in rec.summary.items() if k != "wall_time_s"}
    return summary, rec.curve.drop(columns="wall_time_s")


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_to_valid_files_and_resumes_after_a_kill(method, hopper_data, tmp_path,
                                                             monkeypatch):
    ref = tmp_path / "ref"
    assert _run(method, ref)["status"] == "complete"
    summary, curve = _without_wall_time(ref)  # validates config.json, curve.csv, summary.json
    conf = json.loads((ref / "config.json").read_text())
    assert set(conf["hyperparameters"]) == set(resolve(TASK, method, "smoke").hyperparameters)
    assert not str(conf["dataset_info"]["path"]).startswith("/")  # no machine path

    def kill(pid, sig):
        raise Killed

    killed = tmp_path / "killed"
    monkeypatch.setattr(runcore, "_KILL_AT", KILL_AT)
    monkeypatch.setattr(runcore.os, "kill", kill)
    with pytest.raises(Killed):
        _run(method, killed)
    assert not (killed / "summary.json").exists()
    assert (killed / "checkpoint" / "state.pt").exists()
    monkeypatch.setattr(runcore, "_KILL_AT", -1)
    _run(method, killed)
    summary_b, curve_b = _without_wall_time(killed)
    assert summary_b == summary
    assert curve_b.equals(curve)
