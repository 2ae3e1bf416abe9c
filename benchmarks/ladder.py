"""The scale ladder (docs/scales.md): one factor at a time from the quick preset toward the
study's values, TD3+ODT (and ODT for reference), seed 0 (the budget rung also seeds 1, 2), on hopper-random and halfcheetah-random.

    python benchmarks/ladder.py list                      # the rungs and their commands
    python benchmarks/ladder.py run RUNG --runs DIR       # train one rung (resumes if killed)
    python benchmarks/ladder.py table --runs DIR [--md F] # the table from the run files
    python benchmarks/ladder.py collect --runs DIR --to D # copy the run files (no checkpoints)

The committed rungs live in evidence/ladder/ (its README holds the table):
`collect --runs RUNS --to evidence/ladder`, then `table --runs evidence/ladder`.

Each rung is an ordinary `odtbench run` at the quick scale with `--set` overrides (and, for
the dataset-size rung, $ODTBENCH_DATASET_SCALE=paper: the recipe's 1M-transition data), so
its config.json records every value with its source. Run single-threaded, two at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

BUDGET_POINTS = (20_000, 40_000, 100_000, 200_000, 500_000)
RUN_FILES = ("config.json", "curve.csv", "diagnostics.csv", "summary.json")


@dataclass(frozen=True)
class Rung:
    name: str
    task: str
    method: str
    factor: str
    overrides: dict[str, object] = field(default_factory=dict)
    dataset_scale: str | None = None
    seed: int = 0


def _rungs() -> list[Rung]:
    out = []
    for env in ("halfcheetah", "hopper"):
        task = f"mujoco/{env}-random"
        long = {"online_budget": 500_000, "max_online_iters": 1000}
        mid = {"online_budget": 100_000, "max_online_iters": 1000}
        out += [
            Rung(f"{env}-quick-500k", task, "TD3+ODT", "online budget 500K (quick preset otherwise)", long),
            Rung(f"{env}-odt-quick-500k", task, "ODT", "ODT reference, online budget 500K", long),
            Rung(f"{env}-data1m-100k", task, "TD3+ODT", "dataset 1M transitions (paper recipe)", mid,
                 dataset_scale="paper"),
            Rung(f"{env}-b256k20-100k", task, "TD3+ODT", "critic positions: batch 256, K 20",
                 {**mid, "batch_size": 256, "context_len": 20}),
            Rung(f"{env}-dt128x3-100k", task, "TD3+ODT", "DT 128 / 3 layers / 4 heads",
                 {**mid, "embed_dim": 128, "n_layer": 3, "n_head": 4}),
            Rung(f"{env}-pretrain5k-100k", task, "TD3+ODT", "pretraining 5K updates, warm-up 10K (paper)",
                 {**mid, "pretrain_updates": 5000, "warmup_steps": 10_000}),
        ]
    # The margin at the budget that unlocked halfcheetah (100K): the references and the other
    # two seeds of the verification's seeds 0, 1, 2.
    task = "mujoco/halfcheetah-random"
    mid = {"online_budget": 100_000, "max_online_iters": 1000}
    # seed 0 keeps the rung's plain name (its run directory predates the seeded ones)
    seeds = ((0, "", ""), (1, "-seed1", ", seed 1"), (2, "-seed2", ", seed 2"))
    for prefix, method, what in (("odt-", "ODT", "ODT reference, "),
                                 ("td3-", "TD3", "TD3 (RL gradient only), ")):
        out += [Rung(f"halfcheetah-{prefix}quick-100k{sfx}", task, method,
                     f"{what}online budget 100K{seed_note}", mid, seed=k)
                for k, sfx, seed_note in seeds]
    # TD3+ODT's seed 0 is halfcheetah-quick-500k read at 100K
    out += [Rung(f"halfcheetah-quick-100k-seed{k}", task, "TD3+ODT",
                 f"online budget 100K, seed {k}", mid, seed=k) for k in (1, 2)]
    # The showcase pilots (issue 27): does walker2d-random's margin hold over seeds (300K, the
    # study's 10 evaluation episodes); halfcheetah-medium-replay at 100K; hopper-random with the
    # 128/3/4 DT at 500K (the factor left on hopper).
    long300 = {"online_budget": 300_000, "max_online_iters": 1000, "eval_episodes": 10}
    for prefix, method in (("", "TD3+ODT"), ("odt-", "ODT")):
        out += [Rung(f"walker2d-{prefix}quick-300k-seed{k}", "mujoco/walker2d-random", method,
                     f"{method} online budget 300K, 10 eval episodes, seed {k}", long300, seed=k)
                for k in (0, 1, 2)]
        out.append(Rung(f"halfcheetah-mr-{prefix}quick-100k", "mujoco/halfcheetah-medium-replay",
                        method, f"{method} on medium-replay, online budget 100K", mid))
    out.append(Rung("hopper-dt128x3-500k", "mujoco/hopper-random", "TD3+ODT",
                    "DT 128 / 3 layers / 4 heads, online budget 500K",
                    {"online_budget": 500_000, "max_online_iters": 1000,
                     "embed_dim": 128, "n_layer": 3, "n_head": 4}))
    return out


RUNGS = {r.name: r for r in _rungs()}


def command(r: Rung, runs: Path) -> list[str]:
    cmd = ["odtbench", "run", "--task", r.task, "--method", r.method, "--seed", str(r.seed),
           "--scale", "quick", "--out", str(runs / r.name)]
    for k, v in r.overrides.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    return cmd


def _at(curve: pd.DataFrame, x: int, col: str) -> float | None:
    """`col` of the last online evaluation at or before x transitions (None past the run's end)."""
    onl = curve[curve["phase"] == "online"]
    if onl.empty or onl["online_transitions"].max() < x * 0.98:
        return None
    return float(onl[onl["online_transitions"] <= x * 1.02][col].iloc[-1])


def table(runs: Path) -> pd.DataFrame:
    rows = []
    for r in RUNGS.values():
        d = runs / r.name
        if not (d / "curve.csv").is_file():
            continue
        curve = pd.read_csv(d / "curve.csv")
        diag = pd.read_csv(d / "diagnostics.csv") if (d / "diagnostics.csv").is_file() else None
        pre = curve[curve["phase"] == "pretrain"]["score_mean"]
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        row: dict[str, object] = {"rung": r.name, "method": r.method, "factor": r.factor,
                                  "before": float(pre.iloc[-1]) if len(pre) else None}
        for x in BUDGET_POINTS:
            row[f"score@{x // 1000}K"] = _at(curve, x, "score_mean")
        if diag is not None and diag["q_mc_corr"].notna().any():
            row["q_mc_corr@last"] = float(diag["q_mc_corr"].dropna().iloc[-1])
            row["grad_cos@last"] = float(diag["grad_cosine"].dropna().iloc[-1])
        last = curve.iloc[-1]
        row["score@last"] = float(last["score_mean"])
        row["transitions"] = int(last["online_transitions"])
        row["wall_h"] = round(float(last["wall_time_s"]) / 3600, 2)
        row["status"] = summary.get("status", "running")
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    pr = sub.add_parser("run")
    pr.add_argument("rung", choices=sorted(RUNGS))
    pr.add_argument("--runs", type=Path, required=True)
    pt = sub.add_parser("table")
    pt.add_argument("--runs", type=Path, required=True,
                    help="runs root, e.g. evidence/ladder (the committed rungs)")
    pt.add_argument("--md", type=Path)
    pc = sub.add_parser("collect")
    pc.add_argument("--runs", type=Path, required=True)
    pc.add_argument("--to", type=Path, required=True,
                    help="where the run files go: evidence/ladder for the committed rungs")
    a = p.parse_args(argv)
    if a.cmd == "list":
        for r in RUNGS.values():
            env = f"ODTBENCH_DATASET_SCALE={r.dataset_scale} " if r.dataset_scale else ""
            print(f"{r.name:24s} {r.factor}\n    {env}{' '.join(command(r, Path('RUNS')))}")
        return 0
    if a.cmd == "run":
        r = RUNGS[a.rung]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if r.dataset_scale:
            env["ODTBENCH_DATASET_SCALE"] = r.dataset_scale
        return subprocess.call(command(r, a.runs), env=env)
    if a.cmd == "collect":
        for r in RUNGS.values():
            src, dst = a.runs / r.name, a.to / r.name
            if (src / "curve.csv").is_file():
                dst.mkdir(parents=True, exist_ok=True)
                for name in RUN_FILES:
                    if (src / name).is_file():
                        shutil.copy2(src / name, dst / name)
        return 0
    t = table(a.runs)
    text = t.to_markdown(index=False, floatfmt=".2f") if len(t) else "(no runs yet)"
    if a.md:
        a.md.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
