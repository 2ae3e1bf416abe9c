"""Sweeps as configuration (`ablations:` of the workflow config) and reports/ablations.html:
run directory names carry the swept values, a changed value changes only its own runs, the
report draws every figure from hand-built run files and says which panels have no runs."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_results import make_fake_run

from odtbench.analysis import ablations as ab
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import resolve
from odtbench.report import render_ablations
from odtbench.runfiles.results import iter_runs
from odtbench.workflow import plan as wp

REPO = Path(__file__).resolve().parents[1]


def _config(figures: dict, pending: list[str] | None = None, smoke: dict | None = None) -> dict:
    return {"scale": "smoke", "seeds": None, "methods": None, "hyperparameters": {},
            "external_methods": {}, "device": "cpu",
            "scales": {s: {"seeds": 2, "suites": {"mujoco": {"datasets": ["hopper-random"],
                                                             "methods": ["TD3+ODT"]}}}
                       for s in ("smoke", "quick", "paper")},
            "ablations": {"pending_methods": pending or [], "figures": figures,
                          "scales": {"smoke": smoke or {}}}}


ALPHA = {"fig5a": {"method": "TD3+ODT", "sweep": {"rl_coeff": [10, 1, 0.1]}, "legend": "α={rl_coeff}",
                   "panels": [{"task": "mujoco/hopper-random", "x_max": 500000}]}}


def _runs(plan: dict) -> set[str]:
    return {wp.RUN_DIR.format(scale="smoke", suite=s, dataset=d, method=m, seed=k)
            for s, d, m, k in wp.ablation_runs(plan)}


def test_variant_names_carry_values_and_round_trip():
    name = wp.variant_name("TD3+ODT", {"rl_coeff": 0.01, "critic_layernorm": True})
    assert name == "TD3+ODT@critic_layernorm=true,rl_coeff=0.01"
    assert wp.split_variant(name) == ("TD3+ODT", {"critic_layernorm": True, "rl_coeff": 0.01})
    assert wp.variant_name("TD3+ODT", {"rl_coeff": 10.0}) == wp.variant_name("TD3+ODT", {"rl_coeff": 10})
    assert wp.variant_name("ODT", {}) == "ODT" and wp.split_variant("ODT") == ("ODT", {})
    with pytest.raises(OdtbenchError, match="run directory name"):
        wp.variant_name("TD3+ODT", {"rl_kind": "a/b"})


def test_sweep_expands_one_run_directory_per_value_and_seed():
    plan = wp.ablation_plan(_config(ALPHA), "smoke")
    (panel,) = plan["figures"][0]["panels"]
    assert [line["label"] for line in panel["lines"]] == ["α=10", "α=1", "α=0.1"]
    assert _runs(plan) == {f"results/runs/smoke/mujoco/hopper-random/TD3+ODT@rl_coeff={v}/seed{k}"
                           for v in ("10", "1", "0.1") for k in (0, 1)}


def test_changing_one_value_changes_only_its_runs():
    cfg = _config(ALPHA)
    before = _runs(wp.ablation_plan(cfg, "smoke"))
    changed = copy.deepcopy(cfg)
    changed["ablations"]["figures"]["fig5a"]["sweep"]["rl_coeff"][2] = 0.01
    after = _runs(wp.ablation_plan(changed, "smoke"))
    assert before - after == {f"results/runs/smoke/mujoco/hopper-random/TD3+ODT@rl_coeff=0.1/seed{k}"
                              for k in (0, 1)}
    assert after - before == {f"results/runs/smoke/mujoco/hopper-random/TD3+ODT@rl_coeff=0.01/seed{k}"
                              for k in (0, 1)}
    # and a run's resolved hyperparameters (the run rule's params) depend on its own value only
    hp = {v: resolve("mujoco/hopper-random", f"TD3+ODT@rl_coeff={v}", "smoke").hyperparameters
          for v in (1, 0.01)}
    assert {k for k in hp[1] if hp[1][k] != hp[0.01][k]} == {"rl_coeff"}


def test_sweep_value_wins_over_overrides_and_is_sourced():
    cfg = resolve("mujoco/hopper-random", "TD3+ODT@rl_coeff=0.01", "smoke", 0, {"rl_coeff": 0.5})
    assert cfg.method == "TD3+ODT" and cfg.method_dir == "TD3+ODT@rl_coeff=0.01"
    assert cfg.hyperparameters["rl_coeff"] == 0.01
    assert cfg.sources["rl_coeff"].startswith("sweep value")


def test_methods_fixed_overrides_pending_and_smoke_subgrid():
    # NEW+ODT: a name no build registers, standing for a method a figure names before it exists
    figs = {"fig9": {"methods": ["NEW+ODT", "TD3+ODT"], "set": {"eval_context_len": 1},
                     "panels": [{"task": "mujoco/all"}]}}
    plan = wp.ablation_plan(_config(figs, pending=["NEW+ODT"]), "smoke")
    panels = plan["figures"][0]["panels"]
    assert len(panels) == 12  # mujoco/all: one panel per dataset
    assert [(line["run_method"], line["pending"]) for line in panels[0]["lines"]] == [
        ("NEW+ODT@eval_context_len=1", True), ("TD3+ODT@eval_context_len=1", False)]
    assert {m for _, _, m, _ in wp.ablation_runs(plan)} == {"TD3+ODT@eval_context_len=1"}
    sub = wp.ablation_plan(_config(figs, pending=["NEW+ODT"], smoke={"panels": 2, "lines": 1,
                                                                      "seeds": 1}), "smoke")
    assert len(sub["figures"][0]["panels"]) == 2 and sub["seeds"] == [0]
    assert all(len(p["lines"]) == 1 for p in sub["figures"][0]["panels"])
    with pytest.raises(OdtbenchError, match="unknown method"):
        wp.ablation_plan(_config(figs), "smoke")  # not pending: a typo is an error


def test_a_scale_can_replace_a_figures_panels():
    smoke = {"figure_panels": {"fig5a": [{"task": "mujoco/halfcheetah-random"}]}}
    plan = wp.ablation_plan(_config(ALPHA, smoke=smoke), "smoke")
    (fig,) = plan["figures"]
    assert fig["study_panels"] == ["mujoco/hopper-random"]
    (panel,) = fig["panels"]
    assert panel["dataset"] == "halfcheetah-random" and panel["lines"][0]["label"] == "α=10"  # the figure's keys
    assert {m for _, _, m, _ in wp.ablation_runs(plan)} == {f"TD3+ODT@rl_coeff={v}" for v in (10, 1, 0.1)}
    assert wp.ablation_plan(_config(ALPHA), "smoke")["figures"][0]["study_panels"] == []
    with pytest.raises(OdtbenchError, match="fig99"):
        wp.ablation_plan(_config(ALPHA, smoke={"figure_panels": {"fig99": [{"task": "toy/bandit"}]}}), "smoke")


def test_repository_config_plans_every_study_figure():
    config = wp.load_config(REPO / "workflows/config.yaml", REPO / "workflows/schemas/config.schema.yaml")
    plan = wp.ablation_plan(config, "paper")
    figs = {f["figure"]: f for f in plan["figures"]}
    assert set(figs) == {"fig5a", "fig5b", "fig8", "fig9", "fig10", "fig11", "fig20", "fig21", "fig22"}
    assert len(figs["fig8"]["panels"]) == 12 and len(figs["fig9"]["panels"]) == 12
    assert [line["run_method"] for line in figs["fig20"]["panels"][0]["lines"]][-1] == \
        "TD3+ODT@context_len=1,eval_context_len=1"
    assert {p["y"] for p in figs["fig22"]["panels"]} == {"score", "critic_loss"}
    quick = wp.ablation_plan(config, "quick")  # one CPU machine: the random datasets it builds
    assert [(f["figure"], [p["dataset"] for p in f["panels"]]) for f in quick["figures"]] == [
        ("fig5a", ["hopper-random"]), ("fig9", ["hopper-random", "halfcheetah-random"])]
    assert len(wp.ablation_runs(quick)) == (5 + 2 * 2) * 3


def _variant_run(root: Path, dataset: str, run_method: str, seed: int, final: float) -> None:
    """A contract-valid run of the sweep's base method, in the sweep's run directory."""
    src = make_fake_run(root, dataset=dataset, method=wp.split_variant(run_method)[0], seed=seed,
                        final=final, source="generated:d4rl/random")
    dest = root / "mujoco" / dataset / run_method / f"seed{seed}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dest)


def test_ablations_report_from_hand_built_runs(tmp_path):
    figs = {**ALPHA, "fig9": {"methods": ["NEW+ODT", "TD3+ODT"],
                              "panels": [{"task": "mujoco/hopper-random"},
                                         {"task": "mujoco/hopper-medium"}]}}
    plan = wp.ablation_plan(_config(figs, pending=["NEW+ODT"]), "smoke")
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _variant_run(runs, "hopper-random", "TD3+ODT@rl_coeff=10", seed, 30.0 + seed)
        _variant_run(runs, "hopper-random", "TD3+ODT@rl_coeff=1", seed, 60.0 + seed)
    make_fake_run(runs, dataset="hopper-random", method="TD3+ODT", seed=0, final=70.0,
                  source="generated:d4rl/random")
    # a suite's own listing leaves the sweep's runs out
    assert [p.parent.name for p in iter_runs(runs, "mujoco")] == ["TD3+ODT"]
    records = ab.load_plan_records(plan, runs)
    table = ab.figure_table(plan["figures"][0], plan["seeds"], records, runs)
    summary = ab.line_summary(table).set_index("line")
    assert summary.loc["α=10", "final"] == pytest.approx(30.5)
    assert summary.loc["α=1", "runs"] == "2/2" and summary.loc["α=0.1", "status"] == "missing"
    # jitter: mean |score change| between consecutive online evaluations, then over seeds
    per_seed = []
    for seed in (0, 1):
        c = pd.read_csv(runs / "mujoco/hopper-random/TD3+ODT@rl_coeff=10" / f"seed{seed}/curve.csv")
        scores = c.loc[c["phase"] == "online", "score_mean"].tolist()
        per_seed.append(sum(abs(b - a) for a, b in zip(scores[:-1], scores[1:], strict=True)) / (len(scores) - 1))
    assert summary.loc["α=10", "jitter"] == pytest.approx(sum(per_seed) / 2) and per_seed[0] > 0
    out = render_ablations(plan, runs, tmp_path / "ablations.html")
    html = out.read_text()
    assert {"fig5a", "fig9"} <= set(re.findall(r'id="([^"]+)"', html)) and 'id="banner"' in html
    assert "Scale smoke" in html  # the suite reports' banner, per suite
    assert len(re.findall(r'<img alt="fig[^"]*" src="data:image/svg\+xml;base64,', html)) == 2
    assert "TD3+ODT@rl_coeff=0.1" in html and "missing" in html
    assert "pending (method not registered)" in html and "NEW+ODT" in html
    assert "30.50" in html  # α=10: the mean final score over its two seeds


def test_ablation_run_of_another_scale_is_refused(tmp_path):
    plan = wp.ablation_plan(_config(ALPHA), "smoke")
    runs = tmp_path / "runs"
    src = make_fake_run(runs, dataset="hopper-random", seed=0, scale="quick")
    dest = runs / "mujoco" / "hopper-random" / "TD3+ODT@rl_coeff=1" / "seed0"
    dest.parent.mkdir(parents=True)
    shutil.move(src, dest)
    with pytest.raises(OdtbenchError, match="quick"):
        ab.load_plan_records(plan, runs)


def test_a_config_outside_the_repository_finds_its_schema_or_says_so(tmp_path):
    """`odtbench ablations --config PATH` reads the schema next to PATH (workflows/schemas/),
    wherever it is run from; without one, one line says so."""
    (tmp_path / "wf/schemas").mkdir(parents=True)
    shutil.copy2(REPO / "workflows/config.yaml", tmp_path / "wf/config.yaml")
    shutil.copy2(REPO / "workflows/schemas/config.schema.yaml", tmp_path / "wf/schemas/config.schema.yaml")
    assert wp.load_config(tmp_path / "wf/config.yaml")["ablations"]["figures"]
    (tmp_path / "wf/schemas/config.schema.yaml").unlink()
    with pytest.raises(OdtbenchError, match="config.schema.yaml not found"):
        wp.load_config(tmp_path / "wf/config.yaml")
