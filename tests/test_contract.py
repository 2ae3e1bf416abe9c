"""The run-result contract's JSON Schema files (odtbench/runfiles/schemas/): a valid file passes, a
broken one fails with one line naming the file and the field."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from test_results import make_fake_run

from odtbench.analysis.diagnostics import diagnostics_table
from odtbench.errors import OdtbenchError
from odtbench.runfiles import contract
from odtbench.runfiles.results import (
    CURVE_COLUMNS,
    DIAGNOSTIC_COLUMNS,
    read_rows,
    validate_run,
    write_diagnostics,
)


def test_schemas_ship_with_the_package_and_define_the_columns():
    for name in contract.SCHEMA_FILES.values():
        schema = json.loads(resources.files("odtbench.runfiles").joinpath("schemas", name).read_text())
        assert schema["$schema"].endswith("2020-12/schema") and schema["type"] == "object"
    assert CURVE_COLUMNS[:2] == ("phase", "iteration") and CURVE_COLUMNS[-1] == "success_rate"
    # 17 columns, then PPO's ratio columns (added later, at the end)
    assert DIAGNOSTIC_COLUMNS[16] == "diag_wall_s" and len(DIAGNOSTIC_COLUMNS) == 20
    assert DIAGNOSTIC_COLUMNS[17:] == ("ppo_ratio_mean", "ppo_ratio_max", "ppo_log_ratio_max")


def _one_line_error(run, file) -> str:
    with pytest.raises(OdtbenchError) as err:
        validate_run(run)
    msg = str(err.value)
    assert "\n" not in msg and str(run / file) in msg and "fix the program" in msg
    return msg


@pytest.mark.parametrize("file,key,value,needle", [
    ("config.json", "method", None, "field 'method' is missing"),
    ("config.json", "seed", "0", "field 'seed' must be a non-negative integer, got '0'"),
    ("config.json", "hyperparameters", [], "field 'hyperparameters' must be an object"),
    ("summary.json", "gradient_steps", None, "field 'gradient_steps' is missing"),
    ("summary.json", "wall_time_s", "1 s", "field 'wall_time_s' must be a finite number"),
    ("summary.json", "score_kind", "percent", "field 'score_kind' must be one of"),
])
def test_broken_json_file_is_one_line(tmp_path, file, key, value, needle):
    run = make_fake_run(tmp_path)
    obj = json.loads((run / file).read_text())
    if value is None:
        del obj[key]
    else:
        obj[key] = value
    (run / file).write_text(json.dumps(obj))
    assert needle in _one_line_error(run, file)


def test_non_finite_number_breaks_the_contract(tmp_path):
    run = make_fake_run(tmp_path)
    obj = json.loads((run / "config.json").read_text())
    obj["reference"]["max"] = float("inf")  # json writes Infinity, which json reads back
    (run / "config.json").write_text(json.dumps(obj))
    assert "field 'max' (in reference) must be a finite number" in _one_line_error(run, "config.json")


def test_broken_curve_row_names_row_and_column(tmp_path):
    run = make_fake_run(tmp_path)
    lines = (run / "curve.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[CURVE_COLUMNS.index("gradient_steps")] = "many"
    lines[2] = ",".join(cells)
    (run / "curve.csv").write_text("\n".join(lines) + "\n")
    msg = _one_line_error(run, "curve.csv")
    assert "row 3 column 'gradient_steps' must be a non-negative integer, got 'many'" in msg


def test_diverged_summary_needs_a_reason(tmp_path):
    run = make_fake_run(tmp_path, status="diverged", final=None)
    assert validate_run(run).status == "diverged"
    obj = json.loads((run / "summary.json").read_text())
    obj["diverged_reason"] = ""
    (run / "summary.json").write_text(json.dumps(obj))
    assert "field 'diverged_reason' must be a non-empty string" in _one_line_error(run, "summary.json")


def test_diagnostics_rows_are_checked_and_a_broken_file_only_hides_the_figure(tmp_path):
    run = make_fake_run(tmp_path)
    row = {"phase": "online", "iteration": 1, "online_transitions": 10, "gradient_steps": 5,
           "q_s0": 1.5, "mc_return_s0": 1.0, "buffer_online_share": 0.5, "online_episodes": 2}
    path = write_diagnostics(run / "diagnostics.csv", [row])
    rows = read_rows(path, "diagnostics")
    assert rows[0]["q_s0"] == 1.5 and rows[0]["grad_cosine"] is None
    assert diagnostics_table([validate_run(run)])["q_over"].tolist() == [0.5]
    write_diagnostics(path, [{**row, "buffer_online_share": 1.5}])
    with pytest.raises(OdtbenchError, match=r"diagnostics\.csv: row 2 column 'buffer_online_share' "
                                            r"must be a fraction in \[0, 1\]"):
        read_rows(path, "diagnostics")
    assert diagnostics_table([validate_run(run)]).empty


def test_a_diagnostics_file_from_before_the_ppo_columns_still_reads(tmp_path):
    run = make_fake_run(tmp_path)
    row = {"phase": "online", "iteration": 1, "online_transitions": 10, "gradient_steps": 5,
           "q_s0": 1.5, "diag_wall_s": 0.1}
    path = write_diagnostics(run / "diagnostics.csv", [row])
    lines = path.read_text().splitlines()
    old = [",".join(line.split(",")[:17]) for line in lines]  # the 17-column file of old runs
    path.write_text("\n".join(old) + "\n")
    rows = read_rows(path, "diagnostics")
    assert rows[0]["diag_wall_s"] == 0.1 and rows[0]["ppo_ratio_max"] is None
    path.write_text("\n".join(",".join(line.split(",")[:16]) for line in lines) + "\n")
    with pytest.raises(OdtbenchError, match="header"):
        read_rows(path, "diagnostics")
