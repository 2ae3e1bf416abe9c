"""Run-result files: atomic writers, validation against the contract, provenance.

`make_fake_run` (also used by test_analysis.py and test_report.py) writes a valid run directory
with the library's own writers; no training happens in these tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import (
    CURVE_COLUMNS,
    atomic_write_json,
    atomic_write_text,
    iter_runs,
    load_run,
    provenance,
    run_dir,
    validate_run,
    write_curve,
    write_run,
)


def make_fake_run(root, suite="mujoco", dataset="hopper-medium", method="TD3+ODT", seed=0, *,
                  before=10.0, final=50.0, scale="smoke", status="complete", n_online=4,
                  budget=4000, source="generated:d4rl/medium", checksum=None, probes=None,
                  x_jitter=0) -> Path:
    """A complete, contract-valid run directory whose scores rise linearly before -> final."""
    xs = np.linspace(0, budget, n_online + 1)[1:].astype(int) + x_jitter
    scores = np.linspace(before, final, n_online + 1)[1:] if final is not None else []
    rows = [{"phase": "pretrain", "iteration": 0, "online_transitions": 0, "gradient_steps": 100,
             "wall_time_s": 1.0, "return_mean": before / 100, "return_std": 0.1,
             "score_mean": before, "score_std": 1.0, "length_mean": 1.0, "success_rate": None}]
    for i, (x, s) in enumerate(zip(xs, scores, strict=False)):
        rows.append({"phase": "online", "iteration": i + 1, "online_transitions": int(x),
                     "gradient_steps": 100 + 50 * (i + 1), "wall_time_s": 2.0 + i,
                     "return_mean": s / 100, "return_std": 0.1, "score_mean": float(s),
                     "score_std": 1.0, "length_mean": 1.0, "success_rate": None})
    ds = {"id": f"odtbench/{suite}-{dataset}/{scale}-v0", "source": source,
          "checksum": checksum or f"sha256:{dataset}"}
    ref = {"min": 0.0, "max": 1.0, "source": "test reference"}
    common = {"suite": suite, "dataset": dataset, "method": method, "seed": seed, "scale": scale}
    config = {**common, "hyperparameters": {"embed_dim": 8, "rl_coeff": 0.1},
              "hyperparameter_sources": {"embed_dim": "scale smoke"}, "dataset_info": {**ds, "path": "x"},
              "reference": {**ref, "score_kind": "normalized"}, "provenance": provenance()}
    finite = [r["score_mean"] for r in rows]
    summary = {**common, "status": status,
               "diverged_reason": "non-finite critic loss" if status == "diverged" else None,
               "before_score": before, "final_score": finite[-1] if final is not None else None,
               "best_score": max(finite[1:]) if len(finite) > 1 else before,
               "online_transitions": int(xs[len(scores) - 1]) if len(scores) else 0,
               "gradient_steps": rows[-1]["gradient_steps"], "wall_time_s": 12.5,
               "score_kind": "normalized", "reference": ref, "dataset_info": ds}
    out = write_run(run_dir(root, suite, dataset, method, seed), config, rows, summary)
    if probes is not None:
        atomic_write_json(out / "probes.json", probes)
    return out


# ----------------------------------------------------------------------------- writers

def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_json(p, {"x": np.float32(1.5), "n": np.int64(3), "bad": float("nan"),
                          "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "n": 3, "bad": None, "arr": [0, 1, 2]}
    atomic_write_text(p, "{}")
    assert p.read_text() == "{}"
    assert [f.name for f in p.parent.iterdir()] == ["a.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"old": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"new": object()})  # not serialisable: nothing replaced
    assert json.loads(p.read_text()) == {"old": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_write_curve_exact_columns_and_rejects_unknown(tmp_path):
    p = write_curve(tmp_path / "curve.csv", [{"phase": "online", "iteration": 1,
                                              "score_mean": 2.5, "success_rate": None}])
    lines = p.read_text().splitlines()
    assert lines[0] == ",".join(CURVE_COLUMNS)
    assert lines[1].split(",")[CURVE_COLUMNS.index("score_mean")] == "2.5"
    with pytest.raises(OdtbenchError, match="unknown column"):
        write_curve(tmp_path / "c2.csv", [{"phase": "online", "scroe_mean": 1}])


def test_run_dir_layout_and_bad_names(tmp_path):
    assert run_dir(tmp_path, "toy", "bandit", "TD3+ODT", 3) == tmp_path / "toy/bandit/TD3+ODT/seed3"
    with pytest.raises(OdtbenchError):
        run_dir(tmp_path, "toy", "a/b", "ODT", 0)


def test_provenance_fields():
    p = provenance(device="cpu")
    for key in ("odtbench_version", "git_commit", "python", "torch", "numpy", "gymnasium",
                "mujoco", "minari", "platform", "cpu", "cpu_count", "hostname", "device",
                "started_at"):
        assert key in p
    assert p["device"] == "cpu" and p["started_at"].endswith("Z")
    assert p["numpy"] == np.__version__


# ----------------------------------------------------------------------------- reading

def test_round_trip_and_iter_runs(tmp_path):
    a = make_fake_run(tmp_path, seed=1)
    b = make_fake_run(tmp_path, seed=0, method="ODT")
    make_fake_run(tmp_path, suite="toy", dataset="bandit")
    assert list(iter_runs(tmp_path, "mujoco")) == [b, a]
    rec = load_run(a)
    assert rec.key == ("mujoco", "hopper-medium", "TD3+ODT", 1)
    assert rec.status == "complete"
    assert list(rec.curve.columns) == list(CURVE_COLUMNS)
    assert rec.curve["online_transitions"].dtype == np.int64
    assert rec.summary["final_score"] == pytest.approx(50.0)
    assert math.isnan(rec.curve["success_rate"].iloc[0])


def test_dataset_record_under_the_dataset_key(tmp_path):
    # docs/contracts.md spells the record as "dataset" too; the name then comes from
    # dataset_info["task"] or the directory.
    d = make_fake_run(tmp_path, dataset="hopper-random")
    for name, extra in (("config.json", {"dataset_info": {"task": "mujoco/hopper-random"}}),
                        ("summary.json", {})):
        obj = json.loads((d / name).read_text())
        obj["dataset"] = obj.pop("dataset_info")
        obj.update(extra)
        (d / name).write_text(json.dumps(obj))
    rec = validate_run(d)
    assert rec.config["dataset"] == rec.summary["dataset"] == "hopper-random"
    assert rec.summary["dataset_info"]["checksum"] == "sha256:hopper-random"


def test_incomplete_run_has_no_summary(tmp_path):
    d = make_fake_run(tmp_path)
    (d / "summary.json").unlink()
    rec = validate_run(d)
    assert rec.summary is None and rec.status == "incomplete"


def test_diverged_run_with_null_final_is_valid(tmp_path):
    d = make_fake_run(tmp_path, status="diverged", final=None)
    rec = validate_run(d)
    assert rec.status == "diverged" and rec.summary["final_score"] is None


def _edit_json(path: Path, **changes):
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("file,change,field", [
    ("summary.json", {"status": "finished"}, "'status'"),
    ("summary.json", {"final_score": "high"}, "'final_score'"),
    ("summary.json", {"final_score": 12.0}, "'final_score'"),  # disagrees with curve.csv
    ("summary.json", {"seed": 7}, "'seed'"),
    ("summary.json", {"schema": "v0"}, "'schema'"),
    ("config.json", {"scale": ""}, "'scale'"),
    ("config.json", {"dataset_info": {"id": "x", "source": "y"}}, "'checksum'"),
])
def test_validation_names_file_and_field(tmp_path, file, change, field):
    d = make_fake_run(tmp_path)
    _edit_json(d / file, **change)
    with pytest.raises(OdtbenchError) as err:
        validate_run(d)
    msg = str(err.value)
    assert file in msg and field in msg and "\n" not in msg


def test_validation_of_curve(tmp_path):
    d = make_fake_run(tmp_path)
    df = pd.read_csv(d / "curve.csv")
    df.loc[2, "phase"] = "offline"
    df.to_csv(d / "curve.csv", index=False)
    with pytest.raises(OdtbenchError, match=r"curve\.csv.*'phase'"):
        validate_run(d)
    df.loc[2, "phase"] = "online"
    df.loc[2, "online_transitions"] = 10**9  # later rows smaller: decreasing
    df.to_csv(d / "curve.csv", index=False)
    with pytest.raises(OdtbenchError, match="online_transitions.*decrease"):
        validate_run(d)
    df.drop(columns="success_rate").to_csv(d / "curve.csv", index=False)
    with pytest.raises(OdtbenchError, match="header"):
        validate_run(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(OdtbenchError, match=r"config\.json.*not valid JSON"):
        validate_run(d)
