"""The offline→online protocol shared by the ODT family (docs/methods/dt-family.md §5).

pretrain (critic always trained; actor supervised unless rl_from_start) → hard-reset the
targets → online iterations: collect >= min transitions (>= 1 episode) into the trajectory
FIFO, `online_updates_per_iter` actor updates with `actor_update_interval` critic updates
each, evaluate every `eval_interval` iterations and at the end. A run checkpoints on a
schedule and resumes from its last checkpoint with identical numbers on CPU.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.checkpoint import load as load_checkpoint
from odtbench.checkpoint import rng_state, save_atomic, seed_everything, set_rng_state
from odtbench.config import RunConfig
from odtbench.data.replay import SegmentSampler, TrajectoryBuffer, prepare_offline
from odtbench.diagnostics import OnlineEpisodeStats, critic_vs_returns, online_share
from odtbench.evaluation import eval_seeds, online_seeds, rollout
from odtbench.methods.dt_agent import SPEED_ENV, SpeedOptions
from odtbench.progress import Progress
from odtbench.results import (
    CURVE_COLUMNS,
    atomic_write_json,
    provenance,
    write_curve,
    write_diagnostics,
)

CKPT_NAME = "state.pt"
DATASET_SCALE_ENV = "ODTBENCH_DATASET_SCALE"
# Test hook: SIGKILL this process right after the given actor update (tests/test_loop.py).
_KILL_AT = int(os.environ.get("ODTBENCH_KILL_AT_UPDATE", "-1"))


class Diverged(Exception):
    """A loss, critic value or evaluation return became non-finite: the run stops."""


def divergence_check(metrics: dict[str, torch.Tensor], q_bound: float, where: str) -> str | None:
    """One host sync per chunk. Non-finite values raise Diverged (the run stops); |Q| past the
    bound returns the reason to record (the run goes on, evaluating on schedule, so its
    scores are the ones the study would have recorded: docs/fidelity.md); else None."""
    if not metrics:
        return None
    vals = torch.stack([v.detach().float().reshape(()) for v in metrics.values()])
    if not bool(torch.isfinite(vals).all()):
        raise Diverged(f"non-finite loss at {where}")
    q = metrics.get("q_mean")
    if q is not None and abs(float(q)) > q_bound:
        return f"|Q| {abs(float(q)):.3g} > {q_bound:g} at {where}"
    return None


class Run:
    """One run of one DT-family method on one task and seed, writing the run-result files."""

    # Defaults for subclasses (the baselines' runs) that build their own state in __init__.
    speed: SpeedOptions = SpeedOptions()
    sample_gen: torch.Generator | None = None  # None: batches draw from self.gen

    def __init__(self, cfg: RunConfig, out_dir: Path | str, device: str = "cpu",
                 speed: SpeedOptions | None = None):
        from odtbench.methods.dt_agent import DTAgent

        trajs = self._open(cfg, out_dir, device)
        self.offline = prepare_offline(trajs, self.hp["drop_lowest_return"])
        # Speed options (docs/performance.md): execution only, recorded in config.json; from
        # the caller or $ODTBENCH_SPEED ("compile,bf16,..."); all off by default.
        self.speed = speed if speed is not None else SpeedOptions.parse(os.environ.get(SPEED_ENV))
        if self.speed.resident_sampling and torch.device(device).type != "cpu":
            # data resident on the GPU: batches draw from a generator there (its own stream)
            self.sample_gen = torch.Generator(device).manual_seed(cfg.seed)
        S = self.offline.trajectories[0].observations.shape[1]
        A = self.offline.trajectories[0].actions.shape[1]
        self.agent = DTAgent(self.hp, S, A, device=device, speed=self.speed)
        if self.task.domain == "toy":
            from odtbench.toy import ToyProbe
            self.probe = ToyProbe()
        self.buffer: TrajectoryBuffer | None = None
        self.log = self._make_logger()

    def _open(self, cfg: RunConfig, out_dir: Path | str, device: str) -> list:
        """What every run (DT family and baselines alike) sets up first: task, dataset, seeds,
        environments and counters. Returns the offline trajectories for the method to prepare."""
        from odtbench.data.build import load_task_dataset
        from odtbench.tasks import get_task

        self.cfg, self.hp, self.out = cfg, cfg.hyperparameters, Path(out_dir)
        self.task = get_task(cfg.task_key)
        # $ODTBENCH_DATASET_SCALE: train on another scale's dataset (the scale ladder's dataset
        # size factor, docs/scales.md); config.json's dataset_info records which one was used.
        data_scale = os.environ.get(DATASET_SCALE_ENV) or cfg.scale
        trajs, self.dataset_info = load_task_dataset(cfg.task_key, data_scale)
        self.device, self.probe = device, None
        seed_everything(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.eval_envs = [self.task.make_eval_env() for _ in range(self.hp["eval_episodes"])]
        self.online_env = self.task.make_env()
        self.st: dict[str, Any] = {
            "phase": "pretrain", "pretrain_iter": 0, "pretrain_units": 0, "online_iter": 0,
            "online_transitions": 0, "episodes": 0, "gradient_steps": 0, "wall_time_s": 0.0,
            "curve": [], "status": "running", "diverged_reason": None,
            "diagnostics": [], "online_stats": OnlineEpisodeStats.empty(),
        }
        return trajs

    # ------------------------------------------------------------------ infrastructure
    def _make_logger(self) -> logging.Logger:
        self.out.mkdir(parents=True, exist_ok=True)
        log = logging.getLogger(f"odtbench.run.{self.out}")
        log.setLevel(logging.INFO)
        if not log.handlers:
            h = logging.FileHandler(self.out / "log.txt")
            h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(h)
        return log

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint" / CKPT_NAME

    def save_checkpoint(self) -> None:
        """One checkpoint format for every run: run state, agent and RNG streams, plus what
        the method adds (`_checkpoint_extras`)."""
        self.st["wall_time_s"] += time.perf_counter() - self._t0
        self._t0 = time.perf_counter()
        extras = self._checkpoint_extras()
        payload = {"state": self.st, "agent": self.agent.state_dict(),
                   "rng": rng_state(*self._generators), **extras}
        save_atomic(payload, self.ckpt_path)

    def load_checkpoint(self) -> bool:
        payload = load_checkpoint(self.ckpt_path)
        if payload is None:
            return False
        self.st = payload["state"]
        self.agent.load_state_dict(payload["agent"])
        set_rng_state(payload["rng"], *self._generators)
        self._restore_extras(payload)
        self.log.info("resumed from checkpoint: %s",
                      {k: v for k, v in self.st.items() if k not in ("curve", "chunks")})
        return True

    def _checkpoint_extras(self) -> dict[str, Any]:
        """The DT loop's trajectory FIFO and toy probe."""
        return {"buffer": None if self.buffer is None else self.buffer.state_dict(),
                "probe": self.probe.to_json() if self.probe else None}

    def _restore_extras(self, payload: dict[str, Any]) -> None:
        if payload["buffer"] is not None:
            self.buffer = TrajectoryBuffer.from_state_dict(payload["buffer"])
        if self.probe and payload["probe"]:
            self.probe.load(payload["probe"])

    @property
    def _generators(self) -> list[torch.Generator]:
        extra = self.sample_gen is not None and self.sample_gen is not self.gen
        return [self.gen, self.sample_gen] if extra else [self.gen]

    def _check(self, metrics: dict[str, torch.Tensor], where: str) -> None:
        """Non-finite values stop the run; the first |Q| past the bound marks it diverged
        and it goes on (`divergence_check`)."""
        reason = divergence_check(metrics, self.hp["divergence_q_bound"], where)
        if reason is not None and self.st["status"] != "diverged":
            self.st["status"], self.st["diverged_reason"] = "diverged", reason
            self.log.info("diverged (continuing while finite): %s", reason)

    # ------------------------------------------------------------------ training
    def _units(self, sampler: SegmentSampler, n_units: int, rl: float, sup: float) -> dict:
        """n_units actor updates, each preceded/followed by d critic updates on fresh batches."""
        d, B = self.hp["actor_update_interval"], self.hp["batch_size"]
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(n_units):
            for b in range(d):
                batch = sampler.sample(B, self.sample_gen or self.gen)
                metrics.update(self.agent.critic_step(batch))
                if b == 0:
                    metrics.update(self.agent.actor_step(batch, rl_coeff=rl, sup_coeff=sup))
            self._count_update()
        if "critic_loss" in metrics:  # in the run state, so a resumed run writes the same rows
            self.st["last_critic_loss"] = float(metrics["critic_loss"])
        return metrics

    def _count_update(self, counter: str = "gradient_steps") -> None:
        """One more update of `counter`: the one update counter of every run loop, where the
        resume tests' SIGKILL fires ($ODTBENCH_KILL_AT_UPDATE, tests/test_loop.py)."""
        self.st[counter] += 1
        if self.st[counter] == _KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        self._prog.steps = self.st["gradient_steps"]
        self._prog.update(self._live_done())

    # Progress display (odtbench/progress.py): what a phase counts, and how far it is.
    _prog = Progress("", enabled=False)  # until execute() makes the run's own

    def _pretrain_total(self) -> int:
        return int(self.hp["pretrain_iters"]) * int(self.hp["pretrain_updates"])

    def _phase_done(self) -> int:
        """Pretraining: updates (the first phase, so all gradient steps); online: transitions."""
        st = self.st
        return st["gradient_steps"] if st["phase"] == "pretrain" else st["online_transitions"]

    def _live_done(self) -> int | None:
        """Units done after one update: online, an iteration's transitions count once its
        updates are done (`_end_iteration`), so the rate is not ahead of the work."""
        return self.st["gradient_steps"] if self.st["phase"] == "pretrain" else None

    def _evals_ahead(self, k: int) -> int:
        """Evaluations still ahead in the next k units of the phase (pretraining: one per
        iteration; online: k iterations, every `eval_interval`-th and the last)."""
        hp, st = self.hp, self.st
        if st["phase"] == "pretrain":
            return int(hp["pretrain_iters"]) - st["pretrain_iter"]
        it, every = st["online_iter"], int(hp["eval_interval"])
        if k <= 0:
            return 0
        return sum(j % every == 0 for j in range(it + 1, it + k + 1)) + ((it + k) % every != 0)

    def evaluate(self, phase: str, iteration: int) -> dict:
        hp = self.hp
        self._prog.evaluating()
        seeds = eval_seeds(self.cfg.seed, hp["eval_episodes"])
        # A family without a return token (MLP, PDT) has no RTG target, and a Markov policy
        # (MLP) no context: its agent reads the last state only.
        res = rollout(self.agent, self.eval_envs, seeds, state_mean=self.offline.state_mean,
                      state_std=self.offline.state_std, target_rtg=hp.get("eval_rtg", 0.0),
                      reward_scale=hp.get("reward_scale", 0.0),
                      context_len=hp.get("eval_context_len", 1),
                      max_len=hp["max_episode_len"], deterministic=True)
        scores = self.task.score(res.returns, res.successes)
        row = {"phase": phase, "iteration": iteration,
               "online_transitions": self.st["online_transitions"],
               "gradient_steps": self.st["gradient_steps"],
               "wall_time_s": round(self.st["wall_time_s"] + time.perf_counter() - self._t0, 3),
               "return_mean": float(res.returns.mean()), "return_std": float(res.returns.std()),
               "score_mean": float(scores.mean()), "score_std": float(scores.std()),
               "length_mean": float(res.lengths.mean()),
               "success_rate": float(res.successes.mean()) if res.successes is not None else ""}
        if not np.isfinite(row["return_mean"]):
            raise Diverged(f"non-finite evaluation return at {phase} iteration {iteration}")
        self.st["curve"].append(row)
        write_curve(self.out / "curve.csv", self.st["curve"])
        if self._diagnose:
            self._diagnostics_row(row, res.trajectories)
        self.log.info("eval %s it=%d transitions=%d score=%.2f return=%.2f", phase, iteration,
                      row["online_transitions"], row["score_mean"], row["return_mean"])
        self._prog.score(row["score_mean"])
        self.st["eval_s"] = self._prog.eval_s  # checkpointed: a resumed run's ETA knows it
        return row

    def _diagnostics_row(self, row: dict, eval_trajs: list) -> None:
        """One diagnostics.csv row for the evaluation `row` (odtbench/diagnostics.py)."""
        t0 = time.perf_counter()
        hp, st, agent = self.hp, self.st, self.agent
        mean, std = self.offline.state_mean, self.offline.state_std
        d: dict[str, Any] = {k: row[k] for k in ("phase", "iteration", "online_transitions",
                                                  "gradient_steps")}
        if getattr(agent, "uses_critic", False):
            qs = [agent.q_values((t.observations - mean) / std, t.actions).cpu().numpy()
                  for t in eval_trajs]
            d.update(critic_vs_returns(qs, [t.rewards for t in eval_trajs], hp["gamma"]))
        # The DT family's trajectory FIFO; the MLP baselines' transition buffer has no share.
        buffer_trajs = getattr(self.buffer, "trajectories", None)
        if buffer_trajs is not None or self.buffer is None:
            d["buffer_online_share"] = online_share(buffer_trajs) if buffer_trajs else 0.0
        d.update(OnlineEpisodeStats.row(st["online_stats"]))
        st["online_stats"] = OnlineEpisodeStats.empty()
        sampler = getattr(self, "_diag_sampler", None)
        if sampler is not None and hasattr(agent, "actor_gradient_stats"):
            # A batch from a generator of its own: the run's sampling stream is untouched.
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + st["gradient_steps"])
            rl, sup = self._diag_coeffs or self._pretrain_coeffs()
            d.update(agent.actor_gradient_stats(sampler.sample(self.hp["batch_size"], gen),
                                                rl, sup))
        d["critic_loss"] = st.get("last_critic_loss")
        d["diag_wall_s"] = round(time.perf_counter() - t0, 4)
        st["diagnostics"].append(d)
        write_diagnostics(self.out / "diagnostics.csv", st["diagnostics"])

    # Subclasses whose agents lack the DT agent's hooks switch the diagnostics off.
    _diagnose = True

    def _pretrain_sampler(self):
        """What `_pretrain_updates` draws batches from (PDT's run returns its own sampler)."""
        hp = self.hp
        return SegmentSampler(self.offline.trajectories, self.offline.state_mean,
                              self.offline.state_std, hp["context_len"], hp["reward_scale"],
                              self.device)

    def _pretrain_coeffs(self) -> tuple[float, float]:
        """(rl, sup) of pretraining: supervised only unless rl_from_start (AntMaze),
        docs/methods/dt-family.md §5."""
        hp = self.hp
        return (hp["rl_coeff"], hp["sup_coeff"]) if hp["rl_from_start"] else (0.0, 1.0)

    def _pretrain_updates(self, sampler, n: int) -> dict:
        """n pretraining updates with the pretraining coefficients."""
        return self._units(sampler, n, *self._pretrain_coeffs())

    def pretrain(self) -> None:
        """`pretrain_iters` x `pretrain_updates`, a checkpoint per chunk, an evaluation per iteration."""
        hp, st = self.hp, self.st
        sampler = self._pretrain_sampler()
        # None: the pretraining coefficients, looked up only by agents with gradient diagnostics
        self._diag_sampler, self._diag_coeffs = sampler, None
        while st["pretrain_iter"] < hp["pretrain_iters"]:
            while st["pretrain_units"] < hp["pretrain_updates"]:
                n = min(hp["checkpoint_every_updates"], hp["pretrain_updates"] - st["pretrain_units"])
                m = self._pretrain_updates(sampler, n)
                st["pretrain_units"] += n
                self._check(m, f"pretraining update {st['gradient_steps']}")
                self.save_checkpoint()
            self.evaluate("pretrain", st["pretrain_iter"])
            st["pretrain_iter"] += 1
            st["pretrain_units"] = 0
            self.save_checkpoint()
        if self.probe:
            self.probe.record(self.agent, 0, st["gradient_steps"], [], self._norm_state0(),
                              hp["reward_scale"], self._has_critic)

    @property
    def _has_critic(self) -> bool:
        return self.hp["rl_kind"] != "none" and self.hp["rl_coeff"] > 0

    def _norm_state0(self) -> np.ndarray:
        s0 = self.offline.trajectories[0].observations[0]
        return (s0 - self.offline.state_mean) / self.offline.state_std

    def collect(self) -> list:
        hp, st = self.hp, self.st
        new, n = [], 0
        stochastic = self.agent.stochastic  # sampled actions, else noise on the deterministic ones
        while True:  # >= 1 episode, until >= min_transitions_per_iter
            seeds = online_seeds(self.cfg.seed, st["episodes"])
            res = rollout(self.agent, [self.online_env], seeds, state_mean=self.offline.state_mean,
                          state_std=self.offline.state_std, target_rtg=hp.get("online_rtg", 0.0),
                          reward_scale=hp["reward_scale"], context_len=hp["eval_context_len"],
                          max_len=hp["max_episode_len"], deterministic=not stochastic,
                          noise_std=0.0 if stochastic else hp["expl_noise"], generator=self.gen)
            for t in res.trajectories:
                t.online = True
            new.extend(res.trajectories)
            n += int(res.lengths.sum())
            st["episodes"] += 1
            self._prog.activity = f"collecting: {n} transitions"
            self._prog.update()
            if n >= hp["min_transitions_per_iter"]:
                break
        st["online_transitions"] += n
        OnlineEpisodeStats.add(st["online_stats"], new, self.offline.state_mean,
                               self.offline.state_std)
        self._prog.activity = "updating"  # what follows a collection, in every online loop
        return new

    def online(self) -> None:
        hp, st = self.hp, self.st
        if st["phase"] == "pretrain":
            # A new trainer at the phase switch hard-resets both targets (docs/methods/dt-family.md §5).
            self.agent.reset_targets()
            if hp["fresh_optimizers_online"]:  # the toy's protocol (docs/fidelity.md)
                self.agent.reset_optimizers()
            self.buffer = TrajectoryBuffer(hp["replay_size"], self.offline.trajectories)
            st["phase"] = "online"
            self.save_checkpoint()
        while st["phase"] == "online":
            it = st["online_iter"]
            new = self.collect()
            self.buffer.add(new)
            sampler = SegmentSampler(self.buffer.trajectories, self.offline.state_mean,
                                     self.offline.state_std, hp["context_len"], hp["reward_scale"],
                                     self.device)
            if hp["online_updates_mode"] == "epoch":  # toy: one pass over the data (docs/toy.md)
                n_units = max(1, sampler.num_transitions // hp["batch_size"])
            else:
                n_units = hp["online_updates_per_iter"]
            self._diag_sampler, self._diag_coeffs = sampler, (hp["rl_coeff"], hp["sup_coeff"])
            m = self._units(sampler, n_units, hp["rl_coeff"], hp["sup_coeff"])
            if self.probe:
                acts = [float(a) for t in new for a in t.actions.reshape(-1)]
                self.probe.record(self.agent, it + 1, st["gradient_steps"], acts,
                                  self._norm_state0(), hp["reward_scale"], self._has_critic)
            self._end_iteration(it, m)

    def _end_iteration(self, it: int, metrics: dict) -> None:
        """After online iteration `it`'s updates: divergence check, evaluation on schedule or
        at the end of the budget, then a checkpoint."""
        hp, st = self.hp, self.st
        self._check(metrics, f"online iteration {it}")
        st["online_iter"] = it + 1
        self._prog.update(st["online_transitions"])
        last = st["online_transitions"] >= hp["online_budget"] or it + 1 >= hp["max_online_iters"]
        if (it + 1) % hp["eval_interval"] == 0 or last:
            self.evaluate("online", it + 1)
        if last:
            st["phase"] = "done"
        self.save_checkpoint()

    # ------------------------------------------------------------------ driver
    def execute(self) -> dict:
        """Run under the run-directory lock, after the directory check (odtbench.rundir:
        resume, or start from nothing after a forced re-run or a code change)."""
        from odtbench.rundir import ensure_prepared
        from odtbench.runlock import run_lock

        with run_lock(self.out):
            ensure_prepared(self.out)
            return self._execute()

    def _execute(self) -> dict:
        self._t0 = time.perf_counter()
        summary_path = self.out / "summary.json"
        if summary_path.exists():
            import json
            return json.loads(summary_path.read_text())
        resumed = self.load_checkpoint()
        if not resumed:
            atomic_write_json(self.out / "config.json", self.config_json())
            # a valid (header-only) curve from the start: a run that diverges before its
            # first evaluation still has the three contract files
            write_curve(self.out / "curve.csv", self.st["curve"])
        self._prog = Progress(f"{self.cfg.method} {self.cfg.task_key} s{self.cfg.seed}", self.log)
        if self.st["curve"]:  # resumed: the last evaluation before the restart
            self._prog.last_score = float(self.st["curve"][-1]["score_mean"])
        self._prog.eval_s, self._prog.evals_ahead = self.st.get("eval_s"), self._evals_ahead
        try:
            if self.st["phase"] == "pretrain":
                self._prog.phase("pretraining", self._pretrain_total(), self._phase_done())
                self.pretrain()
            if self.st["phase"] != "done":
                self._prog.phase("online", int(self.hp["online_budget"]),
                                 self.st["online_transitions"], unit="transitions")
                self.online()
            if self.st["status"] != "diverged":  # a |Q| blow-up keeps its status
                self.st["status"] = "complete"
        except Diverged as exc:
            first = self.st["diverged_reason"] if self.st["status"] == "diverged" else None
            self.st["status"] = "diverged"
            self.st["diverged_reason"] = f"{first}; stopped: {exc}" if first else str(exc)
            self.log.info("diverged: %s", exc)
        finally:
            self._prog.close()
        self.st["wall_time_s"] += time.perf_counter() - self._t0
        self._t0 = time.perf_counter()
        if self.probe and self.probe.epochs:  # none when it diverged in pretraining
            atomic_write_json(self.out / "probes.json", self.probe.to_json())
        summary = self.summary()
        atomic_write_json(summary_path, summary)  # written last: the run is finished
        return summary

    def config_json(self) -> dict:
        cfg, t, info = self.cfg, self.task, self.dataset_info
        prov = provenance()
        prov["device"] = self.device
        prov["speed_options"] = self.speed.enabled  # [] = the reference eager fp32 path
        return {"schema": "odtbench.config/1", "suite": cfg.suite, "dataset": cfg.dataset,
                "method": cfg.method, "seed": cfg.seed, "scale": cfg.scale,
                "hyperparameters": cfg.hyperparameters, "hyperparameter_sources": cfg.sources,
                "dataset_info": info,
                "reference": {"min": t.ref_min, "max": t.ref_max, "source": t.ref_source,
                              "score_kind": t.score_kind},
                "provenance": prov}

    def summary(self) -> dict:
        cfg, st, t = self.cfg, self.st, self.task
        curve = st["curve"]
        pre = [r["score_mean"] for r in curve if r["phase"] == "pretrain"]
        onl = [r["score_mean"] for r in curve if r["phase"] == "online"]
        before = pre[-1] if pre else None
        return {"schema": "odtbench.summary/1", "suite": cfg.suite, "dataset": cfg.dataset,
                "method": cfg.method, "seed": cfg.seed, "scale": cfg.scale,
                "status": st["status"], "diverged_reason": st["diverged_reason"],
                "before_score": before,
                "final_score": onl[-1] if onl else before,
                "best_score": max(onl) if onl else before,
                "online_transitions": st["online_transitions"],
                "gradient_steps": st["gradient_steps"],
                "wall_time_s": round(st["wall_time_s"], 3),
                "score_kind": t.score_kind,
                "reference": {"min": t.ref_min, "max": t.ref_max, "source": t.ref_source},
                "dataset_info": {k: self.dataset_info.get(k) for k in ("id", "source", "checksum")}}


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu",
        speed: SpeedOptions | None = None) -> dict:
    """Run (or resume, or return the finished summary of) one DT-family run."""
    return Run(cfg, out_dir, device=device, speed=speed).execute()


__all__ = ["run", "Run", "Diverged", "CURVE_COLUMNS"]
