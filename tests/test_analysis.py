"""Analysis: scores table, rliable aggregates (equal to rliable's own functions), paper-style
tables (the study's bold/underline rule on its own Table 1), curves, toy figure data, runtime."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from rliable import library as rly
from rliable import metrics
from test_results import make_fake_run

from odtbench.analysis import aggregates as agg
from odtbench.analysis import tables
from odtbench.analysis.curves import mean_std, panel_layout
from odtbench.analysis.reference import comparability_notes, load_paper_results
from odtbench.analysis.runtime import read_benchmarks, runtime_by_method
from odtbench.analysis.scores import build_scores, cell_summary
from odtbench.analysis.suite import aggregate_suite, load_aggregates
from odtbench.analysis.toy import claim_check, final_table, load_probes
from odtbench.errors import OdtbenchError

torch.set_num_threads(1)


def _scores(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """A minimal scores table: {(dataset, method): [final per seed]}."""
    rows = [{"suite": "mujoco", "dataset": d, "method": m, "seed": s, "final_score": v,
             "domain": d.split("-")[0], "status": "complete"}
            for (d, m), vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- matrices

def test_score_matrix_is_runs_by_tasks():
    # 2 runs x 3 tasks. Task means 0, 10, 100 (median 10); run means are 36.7 and 37.3, so a
    # (tasks x runs) matrix would give a different median and a different P(X > Y).
    s = _scores({("a-medium", "TD3+ODT"): [0, 0], ("b-medium", "TD3+ODT"): [10, 10],
                 ("c-medium", "TD3+ODT"): [100, 102],
                 ("a-medium", "ODT"): [1, 1], ("b-medium", "ODT"): [5, 5], ("c-medium", "ODT"): [90, 90]})
    mats, tasks, notes = agg.score_matrices(s)
    assert tasks == ["a-medium", "b-medium", "c-medium"] and notes == []
    x = mats["TD3+ODT"]
    assert x.shape == (2, 3)
    assert x[:, 2].tolist() == [100, 102] and x[1].tolist() == [0, 10, 102]
    est = agg.interval_estimates({"TD3+ODT": x}, reps=20)["TD3+ODT"]
    assert est["median"]["point"] == pytest.approx(10.0)
    assert metrics.aggregate_median(x.T) != pytest.approx(10.0)  # the swap is detectable
    # P(TD3+ODT > ODT): task a 0, task b 1, task c 1 -> 2/3; swapped axes give 5/9.
    poi = agg.probability_of_improvement(mats, reps=20)["ODT"]["point"]
    assert poi == pytest.approx(2 / 3)
    assert agg.improvement_probability(x.T, mats["ODT"].T) == pytest.approx(5 / 9)


def test_matrix_uses_common_tasks_and_smallest_run_count():
    s = _scores({("a-medium", "TD3+ODT"): [1, 2, 3], ("b-medium", "TD3+ODT"): [4, 5],
                 ("a-medium", "ODT"): [1, 2], ("b-medium", "ODT"): [3, 4], ("c-medium", "ODT"): [9, 9]})
    mats, tasks, notes = agg.score_matrices(s)
    assert tasks == ["a-medium", "b-medium"]
    assert mats["TD3+ODT"].tolist() == [[1, 4], [2, 5]]
    assert any("c-medium" in n for n in notes) and any("TD3+ODT: 2 run(s)" in n for n in notes)


# ----------------------------------------------------------------------------- rliable

def _rliable_stacked(x):
    return np.array([metrics.aggregate_median(x), metrics.aggregate_iqm(x),
                     metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x, 100.0)])


@pytest.mark.filterwarnings("ignore::FutureWarning")  # arch's, from the direct rliable call
@pytest.mark.parametrize("shape", [(5, 12), (3, 1), (7, 5), (1, 3)])
def test_aggregates_equal_rliable(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.uniform(-10, 130, size=shape)
    ours = agg.interval_estimates({"m": x}, reps=200, seed=3)["m"]
    np.random.seed(3)  # rliable's stratified bootstrap draws from the global numpy RNG
    point, ci = rly.get_interval_estimates({"m": x}, _rliable_stacked, reps=200,
                                           random_state=np.random.RandomState(3))
    assert agg.interval_estimates({"m": x}, reps=200, seed=3)["m"] == ours  # reproducible
    for i, k in enumerate(agg.METRICS):
        assert ours[k]["point"] == pytest.approx(point["m"][i], abs=1e-9)
        assert ours[k]["low"] == pytest.approx(ci["m"][0, i], abs=1e-9)
        assert ours[k]["high"] == pytest.approx(ci["m"][1, i], abs=1e-9)
    assert agg.iqm(x) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)


def test_improvement_and_profiles_equal_rliable():
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(0, 10, (5, 4)))  # rounded: ties inside and across methods
    y = np.round(rng.uniform(0, 10, (4, 4)))
    y[:, 0] = x[:4, 0]
    assert agg.improvement_probability(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
    assert agg.improvement_probability(x, x) == pytest.approx(0.5)
    tau = np.linspace(0, 10, 11)
    assert np.array_equal(agg.score_distribution(x, tau), rly.score_distributions(x, tau))
    prof = agg.performance_profiles({"x": x}, tau, reps=50)["x"]
    ref, _ = rly.create_performance_profile({"x": x}, tau, reps=10)
    assert np.allclose(prof["point"], ref["x"])
    assert all(lo <= p + 1e-12 and p <= hi + 1e-12
               for lo, p, hi in zip(prof["low"], prof["point"], prof["high"], strict=True))


def test_compute_aggregates_groups_and_json():
    s = _scores({("hopper-medium", "TD3+ODT"): [50, 60], ("ant-medium", "TD3+ODT"): [70, 80],
                 ("hopper-medium", "ODT"): [20, 30], ("ant-medium", "ODT"): [40, 45]})
    out = agg.compute_aggregates(s, reps=30)
    assert set(out["groups"]) == {"all", "domain:ant", "domain:hopper"}
    assert out["groups"]["all"]["metrics"]["TD3+ODT"]["mean"]["point"] == pytest.approx(65)
    assert out["groups"]["domain:ant"]["tasks"] == ["ant-medium"]
    json.dumps(out)  # serialisable as is


# ----------------------------------------------------------------------------- tables

# The study's Table 1 as the paper marks it (bold = best final; underlined = > 90 % of best).
TABLE1_BOLD = {
    "hopper-medium-v2": "ODT", "hopper-medium-replay-v2": "TD3+BC", "hopper-random-v2": "TD3+ODT",
    "halfcheetah-medium-v2": "TD3+ODT", "halfcheetah-medium-replay-v2": "TD3+ODT",
    "halfcheetah-random-v2": "TD3", "walker2d-medium-v2": "TD3+ODT",
    "walker2d-medium-replay-v2": "TD3", "walker2d-random-v2": "TD3", "ant-medium-v2": "TD3+ODT",
    "ant-medium-replay-v2": "TD3", "ant-random-v2": "TD3+ODT", "Average": "TD3+ODT",
}
TABLE1_UNDERLINE = {
    "hopper-medium-v2": {"TD3", "TD3+ODT"}, "hopper-medium-replay-v2": {"TD3", "TD3+ODT"},
    "hopper-random-v2": {"TD3"}, "halfcheetah-medium-v2": {"TD3"},
    "halfcheetah-medium-replay-v2": {"TD3"}, "halfcheetah-random-v2": set(),
    "walker2d-medium-v2": {"TD3"}, "walker2d-medium-replay-v2": {"IQL", "TD3+ODT"},
    "walker2d-random-v2": set(), "ant-medium-v2": {"TD3+BC", "TD3"},
    "ant-medium-replay-v2": {"TD3+BC", "TD3+ODT"}, "ant-random-v2": {"TD3+BC"}, "Average": {"TD3"},
}


def test_bold_and_underline_reproduce_the_studys_table1():
    paper = load_paper_results("mujoco")
    t = tables.paper_table(paper)
    assert t.columns == ["TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT"]
    styles = t.styles()
    for row in t.rows:
        bold = {m for (r, m), s in styles.items() if r == row and s == "bold"}
        under = {m for (r, m), s in styles.items() if r == row and s == "underline"}
        assert bold == {TABLE1_BOLD[row]}, row
        assert under == TABLE1_UNDERLINE[row], row
    # The Average row is recomputed from the rows (88.38 for TD3+ODT, as printed).
    avg = t.cells[-1][t.columns.index("TD3+ODT")]
    assert avg.text == "88.38 (+46.59)"


def test_best_marks_rule():
    assert tables.best_marks([10.0, 9.5, 9.0, None, 10.0]) == ["bold", "underline", "", "", "bold"]
    assert tables.best_marks([None, None]) == ["", ""]


def test_table_renderers_and_before_after():
    cells = pd.DataFrame({"dataset": ["d1", "d1", "d2"], "method": ["ODT", "TD3+ODT", "ODT"],
                          "final": [50.0, 95.0, 10.0], "increase": [5.0, 60.0, -1.0],
                          "n": [2, 1, 2], "n_runs": [2, 2, 2]})
    t = tables.paper_table(cells, title="t_1 & co")
    assert t.cells[0][1].mark == "†" and t.cells[1][1].text == "—"
    assert t.cells[2][1].mark == "*"  # TD3+ODT averaged over one of two datasets
    md, html, tex, csv = (f(t) for f in (tables.to_markdown, tables.to_html, tables.to_latex,
                                          tables.to_csv))
    assert "**95.00 (+60.00)†**" in md
    assert "<b>95.00 (+60.00)<sup>†</sup></b>" in html
    assert r"\textbf{95.00 (+60.00)$^\dagger$}" in tex and r"t\_1 \& co" in tex
    assert "d1,TD3+ODT,95.00 (+60.00),95.0,bold,†" in csv
    ba = tables.paper_table(cells, kind="before_after")
    assert ba.cells[0][0].text == "45.00 → 50.00"
    with pytest.raises(OdtbenchError, match="valid choices"):
        tables.paper_table(cells, kind="nope")


# ----------------------------------------------------------------------------- scores

def test_build_scores_keeps_every_status(tmp_path):
    make_fake_run(tmp_path, method="ODT", seed=0, final=20.0)
    make_fake_run(tmp_path, method="TD3+ODT", seed=0, final=80.0)
    make_fake_run(tmp_path, method="TD3+ODT", seed=1, status="diverged", final=None)
    (make_fake_run(tmp_path, method="TD3+ODT", seed=2) / "summary.json").unlink()
    s = build_scores(tmp_path, "mujoco", expected=[("hopper-medium", "ODT", 1)])
    by = {(r.method, r.seed): r for r in s.itertuples()}
    assert by[("ODT", 0)].status == "complete" and by[("ODT", 0)].final_score == pytest.approx(20)
    assert by[("ODT", 0)].increase == pytest.approx(10)
    assert by[("TD3+ODT", 1)].status == "diverged" and np.isnan(by[("TD3+ODT", 1)].final_score)
    assert by[("TD3+ODT", 2)].status == "incomplete"
    assert by[("ODT", 1)].status == "missing"
    assert list(s["method"].unique()) == ["ODT", "TD3+ODT"]  # legend order
    assert s.iloc[0]["paper_dataset"] == "hopper-medium-v2"
    cells = cell_summary(s).set_index("method")
    assert cells.loc["TD3+ODT", "n"] == 1 and cells.loc["TD3+ODT", "n_runs"] == 3
    notes = " ".join(comparability_notes(s))
    assert "smoke" in notes and "generated" in notes and "3 run(s)" in notes


def test_build_scores_refuses_mixed_scales_and_sources(tmp_path):
    make_fake_run(tmp_path, method="ODT", scale="smoke")
    make_fake_run(tmp_path, method="TD3+ODT", scale="quick")
    with pytest.raises(OdtbenchError, match="mix scales quick, smoke.*allow_mixed"):
        build_scores(tmp_path, "mujoco")
    assert len(build_scores(tmp_path, "mujoco", allow_mixed=True)) == 2
    other = tmp_path / "b"
    make_fake_run(other, method="ODT")
    make_fake_run(other, method="TD3+ODT", source="minari:mujoco/hopper/medium-v0")
    with pytest.raises(OdtbenchError, match="dataset sources"):
        build_scores(other, "mujoco")
    third = tmp_path / "c"
    make_fake_run(third, method="ODT", checksum="sha256:a")
    make_fake_run(third, method="TD3+ODT", checksum="sha256:b")
    with pytest.raises(OdtbenchError, match="'hopper-medium' used 2 different dataset versions"):
        build_scores(third, "mujoco")


def test_aggregate_suite_writes_everything_and_detects_stale(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    for d in ("hopper-medium", "hopper-random"):
        for m, f in (("ODT", 20.0), ("TD3+ODT", 60.0)):
            for seed in (0, 1):
                make_fake_run(runs, dataset=d, method=m, seed=seed, final=f + seed)
    aggregate_suite("mujoco", runs, out, reps=30)
    names = {p.name for p in out.iterdir()}
    for stem in ("table_final", "table_before_after"):
        assert {f"{stem}.{e}" for e in ("html", "md", "tex", "csv")} <= names
    assert {"scores.csv", "aggregates.json", "table_vs_paper.csv"} <= names
    s = pd.read_csv(out / "scores.csv")
    assert len(s) == 8 and set(s["status"]) == {"complete"}
    scores = build_scores(runs, "mujoco")
    assert load_aggregates(out / "aggregates.json", scores, 30) is not None
    assert load_aggregates(out / "aggregates.json", scores, 10_000) is None  # other reps
    make_fake_run(runs, dataset="hopper-random", method="ODT", seed=2)
    assert load_aggregates(out / "aggregates.json", build_scores(runs, "mujoco")) is None
    vs = pd.read_csv(out / "table_vs_paper.csv")
    row = vs[(vs["dataset"] == "hopper-random") & (vs["method"] == "TD3+ODT")].iloc[0]
    assert row["paper"] == "76.13 (+74.15)" and row["runs"] == "2/2"


# ----------------------------------------------------------------------------- curves

def test_mean_std_over_seeds_same_and_different_x():
    same = pd.DataFrame({"dataset": "d", "method": "m", "seed": [0, 0, 1, 1], "x": [0, 10, 0, 10],
                         "score_mean": [0.0, 10.0, 2.0, 20.0], "status": "complete"})
    r = mean_std(same)
    assert r["mean"].tolist() == [1.0, 15.0] and r["std"].tolist() == [1.0, 5.0]
    diff = pd.DataFrame({"dataset": "d", "method": "m", "seed": [0, 0, 1, 1, 1],
                         "x": [0, 10, 0, 12, 20], "score_mean": [0.0, 10.0, 0.0, 12.0, 99.0],
                         "status": "complete"})
    r = mean_std(diff)
    assert r["x"].tolist() == [0, 10]  # stops where the shorter finished seed stops
    assert r["mean"].tolist() == [0.0, 10.0] and r["n"].tolist() == [2, 2]


def test_mujoco_panel_layout_follows_the_study():
    grid = panel_layout("mujoco", ["walker2d-random", "hopper-medium", "ant-random", "ant-medium"])
    assert grid == [["hopper-medium", "ant-medium", None], [None, "ant-random", "walker2d-random"]]
    assert panel_layout("toy", ["bandit"]) == [["bandit"]]


# ----------------------------------------------------------------------------- toy

def test_toy_probes_validation_and_claims(tmp_path):
    good = {"action_grid": [-1.0, 0.0, 1.0], "rtg_grid": [0.0, 1.0], "true_reward": [0.0, 1.0, -1.0],
            "epochs": [{"epoch": 0, "gradient_steps": 20, "rollout_actions": [], "rollout_rewards": [],
                        "critic_q": None, "actor_action": [0.1, 0.2]}]}
    (tmp_path / "probes.json").write_text(json.dumps(good))
    assert load_probes(tmp_path)["epochs"][0]["epoch"] == 0
    good["epochs"][0]["critic_q"] = [1.0]
    (tmp_path / "probes.json").write_text(json.dumps(good))
    with pytest.raises(OdtbenchError, match=r"probes\.json.*critic_q.*expected 3"):
        load_probes(tmp_path)
    final = pd.DataFrame({"method": ["ODT"] * 5 + ["TD3+ODT"] * 5 + ["DDPG+ODT"] * 5,
                          "seed": list(range(5)) * 3, "status": "complete",
                          "final_reward": [0.1, 0.2, 0.4, 0.1, 0.3, 0.95, 0.99, 0.92, 0.5, 0.97,
                                           0.95, 0.5, 0.5, 0.99, 0.91]})
    verdicts = {c["method"]: (c["satisfied"], c["verdict"]) for c in claim_check(final)}
    assert verdicts == {"ODT": (5, "holds"), "TD3+ODT": (4, "holds"),
                        "DDPG+ODT": (3, "does not hold")}
    rows = {r["method"]: r for r in final_table(final, reps=50)}
    v = final[final["method"] == "TD3+ODT"]["final_reward"].to_numpy()[:, None]
    assert rows["TD3+ODT"]["iqm"] == pytest.approx(metrics.aggregate_iqm(v))
    assert rows["TD3+ODT"]["iqm_low"] <= rows["TD3+ODT"]["iqm"] <= rows["TD3+ODT"]["iqm_high"]


# ----------------------------------------------------------------------------- runtime

def test_runtime_from_snakemake_benchmarks(tmp_path):
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for method, secs in (("ODT", 10.0), ("TD3+ODT", 30.0)):
        for seed in (0, 1):
            p = tmp_path / "smoke" / "mujoco" / "hopper-medium" / method / f"seed{seed}.tsv"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(head + f"{secs + seed}\t0:00:10\t100.5\t1\t1\t1\t0\t0\t90\t9.5\n")
    other = tmp_path / "smoke" / "toy" / "bandit" / "ODT" / "seed0.tsv"
    other.parent.mkdir(parents=True)
    other.write_text(head + "1\t0:00:01\t1\t1\t1\t1\t0\t0\t1\t1\n")
    b = read_benchmarks(tmp_path, "mujoco")
    assert len(b) == 4 and set(b["method"]) == {"ODT", "TD3+ODT"}
    r = runtime_by_method(b).set_index("method")
    assert r.loc["TD3+ODT", "mean_s"] == pytest.approx(30.5)
    assert r.loc["ODT", "jobs"] == 2 and r.loc["ODT", "max_rss_mb"] == pytest.approx(100.5)
    assert read_benchmarks(tmp_path / "absent", "mujoco").empty


def test_toy_notes_name_the_differences_from_the_study():
    """The toy banner: the real differences (DT actor, noise, batch) from the runs' settings."""
    s = pd.DataFrame([{"suite": "toy", "scale": "quick", "dataset": "bandit", "method": "ODT",
                       "seed": 0, "status": "complete", "dataset_source": "generated:toy-bandit",
                       "online_transitions": 1024}])
    hp = {"embed_dim": 64, "n_layer": 1, "expl_noise": 0.1, "batch_size": 16}
    notes = " ".join(comparability_notes(s, [hp, dict(hp)]))
    assert "Decision Transformer (embed 64, 1 layer" in notes and "2 × 128 MLP" in notes
    assert "N(0, 0.1²)" in notes and "U(−0.01, 0.01)" in notes and "Batch 16" in notes
    assert "no table for" not in notes


# ----------------------------------------------------------------------------- the floor

def test_the_floor_is_a_labelled_reference_never_ranked():
    """TD3-scratch shows as "TD3 from scratch (floor)": last column, never bold even when best,
    a dashed black line in the curves, and left out of the rliable aggregates."""
    from odtbench.analysis.curves import plot_curves

    cells = pd.DataFrame({"dataset": ["d1"] * 3, "method": ["TD3-scratch", "ODT", "TD3+ODT"],
                          "final": [60.0, 10.0, 40.0], "increase": [55.0, 1.0, 30.0]})
    t = tables.paper_table(cells)
    assert t.columns == ["ODT", "TD3+ODT", "TD3-scratch"]
    assert t.styles() == {("d1", "TD3+ODT"): "bold", ("Average", "TD3+ODT"): "bold"}
    assert "<th>TD3 from scratch (floor)</th>" in tables.to_html(t)
    assert any("floor" in n for n in t.footnotes)
    s = _scores({("a-medium", "TD3+ODT"): [1, 2], ("a-medium", "ODT"): [0, 1],
                 ("a-medium", "TD3-scratch"): [9, 9]})
    out = agg.compute_aggregates(s, reps=10)
    assert out["groups"]["all"]["methods"] == ["ODT", "TD3+ODT"]
    assert "TD3-scratch" not in out["groups"]["all"]["probability_of_improvement"]
    assert any("TD3 from scratch (floor) left out" in n for n in out["groups"]["all"]["notes"])
    stats = pd.DataFrame({"dataset": "hopper-random", "method": ["ODT", "TD3-scratch"] * 2,
                          "x": [0, 0, 10, 10], "mean": [1.0, 2.0, 3.0, 4.0], "std": 0.5})
    fig = plot_curves(stats, suite="mujoco")
    floor = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "TD3 from scratch (floor)")
    assert floor.get_linestyle() == "--" and floor.get_color() == "#000000"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ODT", "TD3 from scratch (floor)"]
