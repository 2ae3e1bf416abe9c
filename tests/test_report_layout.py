"""Report layout (issue 30): the learning diagnostics under their own heading after the rliable
plots, no empty diagnostics panel, readable run counts, and one meaning of the online budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from test_results import make_fake_run

from odtbench.analysis.diagnostics import PANELS, plot_diagnostics
from odtbench.analysis.reference import comparability_notes
from odtbench.analysis.toy import runs_per_method
from odtbench.report import render_report
from odtbench.runfiles.results import DIAGNOSTIC_COLUMNS, write_diagnostics


def _diag_rows(corr: float) -> list[dict]:
    rows = []
    for i, x in enumerate((0, 1000, 2000)):
        r = {c: "" for c in DIAGNOSTIC_COLUMNS}  # the optional columns empty
        r.update(q_s0=1.0, mc_return_s0=0.5, buffer_online_share=0.1 * i, grad_cosine=0.2,
                 online_max_abs_z=0.0)
        r.update(phase="pretrain" if i == 0 else "online", iteration=i, online_transitions=x,
                 gradient_steps=100 * (i + 1), q_mc_corr=corr)
        rows.append(r)
    return rows


def test_the_diagnostics_figure_has_its_own_heading_after_the_rliable_plots(tmp_path: Path):
    runs = tmp_path / "runs"
    for m in ("ODT", "TD3+ODT"):
        for seed in (0, 1):
            out = make_fake_run(runs, dataset="hopper-random", method=m, seed=seed)
            write_diagnostics(out / "diagnostics.csv", _diag_rows(0.3))
    html = render_report("mujoco", runs, tmp_path / "mujoco.html", reps=20).read_text()
    heads = re.findall(r'<h2 id="([^"]+)"', html)
    assert heads.index("rliable") + 1 == heads.index("diagnostics")
    rliable = html[html.index('id="rliable"'):html.index('id="diagnostics"')]
    assert 'alt="learning diagnostics"' not in rliable and 'alt="aggregates"' in rliable
    assert 'alt="learning diagnostics"' in html[html.index('id="diagnostics"'):]
    assert 'href="#diagnostics"' in html


def test_a_diagnostics_panel_without_numbers_is_left_out():
    rows = []
    for method in ("ODT", "TD3"):
        for r in _diag_rows(float("nan")):  # one-step episodes: no corr(Q, return)
            rows.append({**r, "dataset": "bandit", "method": method, "seed": 0,
                         "q_over": 0.1})
    table = pd.DataFrame(rows)
    fig = plot_diagnostics(table, ["bandit"])
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == len(PANELS) - 1
    assert not any("corr(Q" in t for t in titles) and titles[0].startswith("bandit: ")
    table["q_mc_corr"] = 0.2
    assert len(plot_diagnostics(table, ["bandit"]).axes) == len(PANELS)


def test_run_counts_read_as_words():
    assert runs_per_method({"ODT": [1] * 5, "TD3": [2] * 5}) == "n=5 runs per method"
    assert runs_per_method({"ODT": [1]}) == "n=1 run per method"
    assert runs_per_method({"ODT": [1] * 5, "TD3": [2] * 4}) == "runs: ODT 5, TD3 4"


def test_the_banner_and_protocol_give_the_budget_one_meaning(tmp_path: Path):
    runs = tmp_path / "runs"
    for seed in (0, 1):  # 4 iterations to 149 transitions: the last passes the budget of 120
        make_fake_run(runs, dataset="hopper-random", method="ODT", seed=seed, budget=149)
    for cfg in runs.rglob("config.json"):
        c = json.loads(cfg.read_text())
        c["hyperparameters"]["online_budget"] = 120
        cfg.write_text(json.dumps(c))
    html = render_report("mujoco", runs, tmp_path / "mujoco.html", reps=20).read_text()
    assert "Runs ended after up to 149 online transitions (configured online_budget 120: a floor" in html
    protocol = html[html.index('id="protocol"'):]
    assert "online_budget = 120 transitions configured, a floor" in protocol
    assert "the runs ended after 149 – 149 transitions" in protocol
    assert "online_budget = 120;" not in protocol  # no longer among the evaluation keys
    scores = pd.DataFrame([{"suite": "mujoco", "scale": "smoke", "status": "complete",
                            "online_transitions": 149, "dataset": "hopper-random",
                            "method": "ODT", "seed": 0, "dataset_source": "minari:x"}])
    notes = comparability_notes(scores, [{"online_budget": 120}])
    assert any("configured online_budget 120" in n for n in notes)
