"""Filtered behaviour cloning as an *external* baseline: a standalone program that writes the
run-result files (docs/contracts.md §1), run by the workflow's `run_external` rule.

    python examples/bc_external/bc.py --task mujoco/hopper-random --seed 0 --scale smoke --out DIR

Offline: an MLP policy regresses the dataset's actions (MSE) on normalised states. Online:
it acts with Gaussian noise 0.1, and after every environment step takes one gradient step on
the best `--top-frac` of all trajectories so far (offline and online) by return, so it can
improve on its data. It uses odtbench only as a library: the dataset loader, the task's
environment and normalisation, the suite's online budget and evaluation episodes (so its curve
shares the x-axis with every other method) and the atomic, validating file writer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from odtbench.data.build import load_task_dataset
from odtbench.hyperparameters.resolve import resolve
from odtbench.runcore.evaluation import rollout
from odtbench.runfiles.results import provenance, write_run
from odtbench.tasks import get_task

# Sizes per scale; the online budget, evaluation episodes and episode cap are the suite's.
SCALES = {
    "smoke": {"hidden": 16, "batch": 8, "pretrain_steps": 20, "eval_every": 40},
    "quick": {"hidden": 128, "batch": 128, "pretrain_steps": 10_000, "eval_every": 5_000},
    "paper": {"hidden": 256, "batch": 256, "pretrain_steps": 100_000, "eval_every": 10_000},
}
SETTINGS = {"lr": 1e-3, "top_frac": 0.1, "expl_noise": 0.1}


class Policy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, act_dim), nn.Tanh())

    def act(self, states, actions, rtg, deterministic=True):  # the rollout interface
        with torch.no_grad():
            return self.net(torch.as_tensor(states, dtype=torch.float32)[:, -1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--scale", required=True, choices=sorted(SCALES))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--method", default="BC", help="name the results are filed under")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    started = provenance()

    task = get_task(args.task)
    trajs, info = load_task_dataset(args.task, args.scale)
    protocol = resolve(args.task, "ODT", args.scale).hyperparameters  # the suite's budgets
    hp = {**SCALES[args.scale], **SETTINGS, **{k: protocol[k] for k in
          ("online_budget", "eval_episodes", "max_episode_len")}}
    obs = np.concatenate([t.observations for t in trajs])
    mean, std = obs.mean(0).astype(np.float32), (obs.std(0) + 1e-3).astype(np.float32)
    pool = [(t.ret, (t.observations - mean) / std, t.actions) for t in trajs]  # (R, S, A)
    policy = Policy(obs.shape[1], trajs[0].actions.shape[1], hp["hidden"])
    opt = torch.optim.Adam(policy.parameters(), lr=hp["lr"])
    eval_envs = [task.make_env() for _ in range(hp["eval_episodes"])]
    env = task.make_env()
    rows, steps, online = [], 0, 0

    def training_set(top_frac: float) -> tuple[torch.Tensor, torch.Tensor]:
        best = sorted(pool, key=lambda x: -x[0])[:max(1, int(len(pool) * top_frac))]
        return (torch.as_tensor(np.concatenate([b[1] for b in best]), dtype=torch.float32),
                torch.as_tensor(np.concatenate([b[2] for b in best]), dtype=torch.float32))

    def fit(s: torch.Tensor, a: torch.Tensor, n: int) -> None:
        nonlocal steps
        for _ in range(n):
            i = torch.as_tensor(rng.integers(0, len(s), hp["batch"]))
            loss = ((policy.net(s[i]) - a[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1

    def evaluate(phase: str, iteration: int) -> None:
        res = rollout(policy, eval_envs, [args.seed * 1000 + i for i in range(len(eval_envs))],
                      state_mean=mean, state_std=std, target_rtg=0.0, reward_scale=0.0,
                      context_len=1, max_len=hp["max_episode_len"])
        if task.score_kind == "success_rate" and res.successes is not None:
            scores = 100.0 * res.successes.astype(float)
        else:
            scores = np.asarray(task.normalize(res.returns), dtype=float)
        rows.append({"phase": phase, "iteration": iteration, "online_transitions": online,
                     "gradient_steps": steps, "wall_time_s": round(time.perf_counter() - t0, 3),
                     "return_mean": res.returns.mean(), "return_std": res.returns.std(),
                     "score_mean": scores.mean(), "score_std": scores.std(),
                     "length_mean": res.lengths.mean(),
                     "success_rate": None if res.successes is None else res.successes.mean()})

    fit(*training_set(1.0), hp["pretrain_steps"])  # plain BC on every offline transition
    evaluate("pretrain", 0)
    while online < hp["online_budget"]:
        o, _ = env.reset(seed=100 + len(pool) + 1_000_000 * args.seed)
        ep_s, ep_a, ret = [], [], 0.0
        s, a = training_set(hp["top_frac"])
        for _ in range(hp["max_episode_len"]):
            x = (np.asarray(o, np.float32) - mean) / std
            act = policy.act(x[None, None], None, None)[0].numpy()
            act = np.clip(act + hp["expl_noise"] * rng.standard_normal(act.shape), -1, 1)
            o, r, term, trunc, _ = env.step(act.astype(np.float32))
            ep_s.append(x)
            ep_a.append(act.astype(np.float32))
            ret += float(r)
            online += 1
            fit(s, a, 1)
            if online % hp["eval_every"] == 0 or online == hp["online_budget"]:
                evaluate("online", -(-online // hp["eval_every"]))
            if term or trunc or online >= hp["online_budget"]:
                break
        pool.append((ret, np.stack(ep_s), np.stack(ep_a)))

    pre = [r["score_mean"] for r in rows if r["phase"] == "pretrain"]
    onl = [r["score_mean"] for r in rows if r["phase"] == "online"]
    common = {"suite": task.suite, "dataset": task.dataset, "method": args.method,
              "seed": args.seed, "scale": args.scale}
    ref = {"min": task.ref_min, "max": task.ref_max, "source": task.ref_source}
    dataset = {k: info[k] for k in ("id", "source", "checksum")}
    config = {**common, "hyperparameters": hp,
              "hyperparameter_sources": {k: "examples/bc_external/bc.py" for k in hp},
              "dataset_info": dataset, "reference": {**ref, "score_kind": task.score_kind},
              "provenance": started}
    summary = {**common, "status": "complete", "diverged_reason": None,
               "before_score": pre[-1], "final_score": onl[-1], "best_score": max(onl),
               "online_transitions": online, "gradient_steps": steps,
               "wall_time_s": round(time.perf_counter() - t0, 3), "score_kind": task.score_kind,
               "reference": ref, "dataset_info": dataset}
    write_run(args.out, config, rows, summary)  # atomic; summary.json last; validated
    print(f"{args.method} on {args.task} seed {args.seed}: before {pre[-1]:.2f}, "
          f"final {onl[-1]:.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
