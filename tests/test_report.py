"""The HTML report: one self-contained file with every section, diverged and missing runs
visible, stored aggregates reused only when they match, the toy Figure 2 section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_results import make_fake_run

from odtbench.analysis.suite import aggregate_suite
from odtbench.errors import OdtbenchError
from odtbench.report import render_report

torch.set_num_threads(1)
SECTIONS = ("headline", "tables", "paper", "curves", "rliable", "protocol", "runtime", "runs")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""",
                      re.I)


def _mujoco_runs(root: Path) -> None:
    for d in ("hopper-medium", "hopper-random"):
        for m, f in (("ODT", 20.0), ("TD3+ODT", 70.0)):
            for seed in (0, 1):
                make_fake_run(root, dataset=d, method=m, seed=seed, final=f + 3 * seed)
    make_fake_run(root, dataset="hopper-random", method="ODT", seed=2, status="diverged",
                  final=None)


def _ids(html: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', html))


def test_mujoco_report_has_every_section_and_is_self_contained(tmp_path):
    runs = tmp_path / "runs"
    _mujoco_runs(runs)
    bench = tmp_path / "bench" / "smoke" / "mujoco" / "hopper-medium" / "TD3+ODT" / "seed0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n42.5\t0:00:42\t321.0\t40.0\n")
    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "hopper-medium.json").write_text(json.dumps({"episodes": 7, "transitions": 1234}))
    expected = [("hopper-medium", m, s) for m in ("ODT", "TD3+ODT") for s in (0, 1, 2)]
    out = render_report("mujoco", runs, tmp_path / "mujoco.html", reps=20, expected=expected,
                        benchmarks_root=tmp_path / "bench", dataset_stats=stats)
    html = out.read_text()
    assert _ids(html) >= set(SECTIONS) | {"banner"}
    assert not EXTERNAL.search(html)
    imgs = re.findall(r'<img[^>]+src="([^"]{0,30})', html)
    assert len(imgs) >= 4 and all(s.startswith("data:image/") for s in imgs)
    # Diverged and missing runs are listed, with the reason.
    assert html.count('class="l status-missing"') == 2
    assert 'class="l status-diverged"' in html and "non-finite critic loss" in html
    # Paper numbers next to ours, the banner says why they are not comparable.
    assert "76.13 (+74.15)" in html and "Not a reproduction" in html and "smoke" in html
    # Paper-style table with the bold rule, runtime from the benchmark file, dataset stats.
    assert "<b>71.50 (+61.50)</b>" in html  # TD3+ODT, hopper-random: mean of 70, 73 minus 10
    assert "<b>71.50 (+61.50)<sup>†</sup></b>" in html  # hopper-medium: 2 of 3 planned runs
    assert "42.5" in html and "transitions: 1,234" in html
    # Protocol: versions, git commit (or None outside git), hardware.
    assert "torch" in html and "cpu_count" in html and "git commit" in html


def test_report_reuses_matching_aggregates_only(tmp_path):
    runs, res = tmp_path / "runs", tmp_path / "results"
    _mujoco_runs(runs)
    aggregate_suite("mujoco", runs, res, reps=20)
    html = render_report("mujoco", runs, tmp_path / "a.html", aggregates_dir=res,
                         include_figures=False).read_text()
    assert "aggregates stored" in html
    make_fake_run(runs, dataset="hopper-medium", method="ODT", seed=5)  # runs changed
    html = render_report("mujoco", runs, tmp_path / "b.html", aggregates_dir=res, reps=20,
                         include_figures=False).read_text()
    assert "aggregates computed" in html


def test_report_with_one_method_and_one_dataset(tmp_path):
    make_fake_run(tmp_path / "runs", method="ODT")
    html = render_report("mujoco", tmp_path / "runs", tmp_path / "r.html", reps=10,
                         include_figures=False).read_text()
    assert _ids(html) >= set(SECTIONS)
    assert "P(TD3+ODT &gt; Y)" not in html  # nothing to compare with
    with pytest.raises(OdtbenchError, match="no runs of suite 'toy'"):
        render_report("toy", tmp_path / "runs", tmp_path / "t.html")


def _probes(method: str, good: bool) -> dict:
    grid = np.linspace(-1, 1, 5)
    true = np.where(grid <= 0, (grid + 1) ** 2, 1 - 2 * grid)
    epochs = []
    for e in range(4):
        a = np.full(8, (-0.9 + 0.3 * e) if good else -0.97)
        epochs.append({"epoch": e, "gradient_steps": 20 + 6 * e,
                       "rollout_actions": [] if e == 0 else a.tolist(),
                       "rollout_rewards": [] if e == 0 else np.where(a <= 0, (a + 1) ** 2, 1 - 2 * a).tolist(),
                       "critic_q": None if method == "ODT" else (true * e / 3).tolist(),
                       "actor_action": np.linspace(-1, a[0], 3).tolist()})
    return {"action_grid": grid.tolist(), "rtg_grid": [0.0, 0.5, 1.0], "true_reward": true.tolist(),
            "epochs": epochs}


def test_toy_report_shows_figure2_and_the_claim(tmp_path):
    runs = tmp_path / "runs"
    for m, final, good in (("ODT", 5.0, False), ("TD3+ODT", 95.0, True)):
        for seed in (0, 1):
            make_fake_run(runs, suite="toy", dataset="bandit", method=m, seed=seed, before=1.0,
                          final=final, probes=_probes(m, good), source="generated:toy-bandit")
    html = render_report("toy", runs, tmp_path / "toy.html", reps=20,
                         include_figures=False).read_text()
    assert "toy" in _ids(html)
    for k in "abcd":
        assert f'alt="Figure 2 panel {k}"' in html
    claims = re.findall(r'<th class="l">([^<]+)</th><td class="l">final reward[^<]*</td>'
                        r'<td>(\d+) / (\d+)</td>\s*<td class="l [^"]+">([^<]+)</td>', html)
    assert ("ODT", "2", "2", "holds") in claims and ("TD3+ODT", "2", "2", "holds") in claims
    assert ("DDPG+ODT", "0", "0", "no runs") in claims
    assert "The study publishes no result table" in html


def test_stand_in_success_rate_report_says_so(tmp_path):
    """A stand-in AntMaze-like suite: the banner names the stand-in and its policy, one seed
    per cell reads as such, scores are called success rates, None stats are left out, and one
    task gets the Median = Mean note."""
    runs = tmp_path / "runs"
    for m in ("ODT", "TD3+ODT"):
        d = make_fake_run(runs, suite="antmaze", dataset="antmaze-umaze", method=m, final=40.0,
                          source="generated:standin/antmaze/antmaze-umaze")
        for name in ("config.json", "summary.json"):
            obj = json.loads((d / name).read_text())
            if name == "config.json":
                obj["reference"]["score_kind"] = "success_rate"
            else:
                obj["score_kind"] = "success_rate"
            (d / name).write_text(json.dumps(obj))
    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "antmaze-umaze.json").write_text(json.dumps({
        "task": "antmaze/antmaze-umaze", "stats": {"episodes": 3, "score_mean": None},
        "recipe": {"standin": True, "policy": "uniform random policy"}}))
    html = render_report("antmaze", runs, tmp_path / "r.html", reps=10, dataset_stats=stats,
                         include_figures=False).read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "STAND-IN datasets (antmaze-umaze: uniform random policy)" in text
    assert "stand-in: uniform random policy" in text  # the datasets table
    assert "1 seed per cell; the study used 5" in text and "1–1" not in text
    assert "Scores here are success rates" in text and "normalised 100·(R" not in text
    assert "score_mean" not in text and "episodes: 3" in text
    assert "with one task the Median equals the Mean" in text
    assert "the bootstrap's own random seed is 0" in text


def test_mujoco_report_shows_the_floor_labelled_and_unranked(tmp_path):
    runs = tmp_path / "runs"
    _mujoco_runs(runs)
    for seed in (0, 1):  # the floor above every method: still not bold, not in the aggregates
        make_fake_run(runs, dataset="hopper-random", method="TD3-scratch", seed=seed, final=90.0)
    html = render_report("mujoco", runs, tmp_path / "mujoco.html", reps=20).read_text()
    assert "<th>TD3 from scratch (floor)</th>" in html
    assert "<b>90.00" not in html and "90.00" in html
    assert "Dashed black: TD3 from scratch (floor)" in html
    assert "TD3 from scratch (floor) left out" in html
