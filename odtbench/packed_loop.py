"""Packed seeds: the listed seeds of one (task, method, scale) trained in one process.

The DT protocol of `odtbench.loop` (docs/methods/dt-family.md §5), run for S seeds in lockstep
on the run core: one `RunCore` per seed keeps that seed's state, files, checkpoints and
evaluation rows exactly as an unpacked run writes them; the seeds share one
`PackedDTAgent` (odtbench/methods/packed_agent.py), so an update is one batched update of all
seeds, and evaluation and collection step every seed's episodes together with one policy
call per step. Per seed, as unpacked: its torch generator (batches, exploration noise), its
stand-in for the global torch stream (dropout, target noise, stochastic samples; saved where
an unpacked checkpoint saves the global stream), its replay buffer, environments, counters.

Seeds leave the pack when they finish (a seed's online budget may run out an iteration
before another's) or diverge; their networks go on being computed but nothing of theirs is
counted or written again. A pack resumes from its seeds' checkpoints; seeds whose
checkpoints are at different points (a kill between two seeds' saves) resume as separate
packs (`run_packed`). Not packed: the toy task (its probe and epoch-sized updates) and the
speed options. docs/performance.md, "Packed seeds", says what this buys and what it costs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.checkpoint import load as load_checkpoint
from odtbench.checkpoint import seed_everything
from odtbench.config import RunConfig
from odtbench.data.replay import SegmentSampler, TrajectoryBuffer, prepare_offline
from odtbench.data.trajectories import Trajectory
from odtbench.diagnostics import OnlineEpisodeStats, online_share
from odtbench.errors import OdtbenchError
from odtbench.evaluation import RolloutResult, episode_trajectory, eval_seeds, online_seeds
from odtbench.loop import pretrain_coeffs
from odtbench.methods.dt_agent import DTAgent
from odtbench.methods.packed_agent import PackedDTAgent, stack_batches
from odtbench.packing import check_packable
from odtbench.progress import Progress
from odtbench.runcore.context import RunContext, run_logger
from odtbench.runcore.core import Diverged, IterationUnits, Metrics, RunCore, sigterm_interrupts
from odtbench.runcore.evaluator import Evaluator, StateNorm
from odtbench.runcore.state import RunState


class _HandedEvaluator(Evaluator):
    """A seed's evaluator: the episodes the pack ran for it in lockstep with the others."""

    result: RolloutResult | None = None

    def episodes(self, agent: Any) -> RolloutResult:
        if self.result is None:
            raise OdtbenchError("packed evaluation asked for episodes it did not run")
        res, self.result = self.result, None
        return res


class _SeedAgent:
    """What a seed's run core sees of the packed agent: its checkpoint part and its Q1."""

    def __init__(self, run: PackedDTRun, s: int):
        self.run, self.s = run, s
        self.stochastic = run.agent.stochastic
        self.uses_critic = run.agent.uses_critic

    def state_dict(self) -> dict[str, Any]:
        return self.run.agent.seed_state_dict(self.s)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run.pending[self.s] = state  # loaded into the pack once every seed's is read

    def q_values(self, states: Any, actions: Any) -> torch.Tensor:
        return self.run.agent.q_values(self.s, states, actions)


class _SeedLoop:
    """A seed's side of the `Loop` protocol: its buffer and its diagnostics."""

    def __init__(self, run: PackedDTRun, s: int):
        self.run, self.s = run, s
        self.units = IterationUnits(run.cores[s])

    def checkpoint_extras(self) -> dict[str, Any]:
        buf = self.run.buffers[self.s]
        offline = self.run.offline.trajectories
        return {"buffer": None if buf is None else buf.state_dict(offline), "probe": None}

    def restore_extras(self, payload: dict[str, Any]) -> None:
        if payload["buffer"] is not None:
            self.run.buffers[self.s] = TrajectoryBuffer.from_state_dict(
                payload["buffer"], self.run.offline.trajectories)

    def diagnostics_extras(self) -> dict[str, Any]:
        """As `DTRun.diagnostics_extras`, with the seed's networks in the shell agent and its
        global stream stand-in as the global stream (restored after: nothing advances)."""
        run, s = self.run, self.s
        buf = run.buffers[s]
        d: dict[str, Any] = {"buffer_online_share": online_share(buf.trajectories) if buf else 0.0}
        sampler = run.diag_samplers[s]
        if sampler is not None:
            st = run.cores[s].state
            gen = torch.Generator().manual_seed(run.cfgs[s].seed * 1_000_003 + st.gradient_steps)
            batch = sampler.sample(run.hp["batch_size"], gen)
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(run.agent.gens[s].get_state())
                d.update(run.agent.seed_agent(s).actor_gradient_stats(batch, *run.diag_coeffs))
        return d

    def pretrain(self) -> None:
        raise NotImplementedError("the pack drives the phases (PackedDTRun.pretrain)")

    def online(self) -> None:
        raise NotImplementedError("the pack drives the phases (PackedDTRun.online)")

    def finish(self) -> None:
        pass


class PackedDTRun:
    """S runs of one DT-family method on one task, differing only in their seed."""

    def __init__(self, cfgs: Sequence[RunConfig], outs: Sequence[Path | str], device: str = "cpu"):
        check_packable(cfgs)
        self.cfgs, self.S = list(cfgs), len(cfgs)
        self.ctxs: list[RunContext] = []
        agents: list[DTAgent] = []
        gens: list[torch.Generator] = []
        for cfg, out in zip(cfgs, outs, strict=True):
            ctx = self._open(cfg, Path(out), device)
            if not self.ctxs:
                self.hp = ctx.hp
                self.offline = prepare_offline(ctx.trajectories, self.hp["drop_lowest_return"])
                self.state_dim = self.offline.trajectories[0].observations.shape[1]
                self.act_dim = self.offline.trajectories[0].actions.shape[1]
            # built right after seeding, as DTRun builds it: the same initial weights; what
            # the global stream holds then is where this seed's stand-in starts
            agents.append(DTAgent(self.hp, self.state_dim, self.act_dim, device=device))
            gens.append(torch.Generator().set_state(torch.get_rng_state()))
            self.ctxs.append(ctx)
        self.agent = PackedDTAgent(self.hp, agents, gens)
        self.norm = StateNorm(self.offline.state_mean, self.offline.state_std)
        self.cores = [RunCore(ctx, RunState(), _SeedAgent(self, s), self.norm, [ctx.gen])
                      for s, ctx in enumerate(self.ctxs)]
        self.evaluators = [_HandedEvaluator(ctx, self.norm) for ctx in self.ctxs]
        self.loops = [_SeedLoop(self, s) for s in range(self.S)]
        for s, core in enumerate(self.cores):
            core.evaluator = self.evaluators[s]
            core.loop = self.loops[s]
        self.pending: dict[int, dict[str, Any]] = {}
        self.buffers: list[TrajectoryBuffer | None] = [None] * self.S
        self.diag_samplers: list[SegmentSampler | None] = [None] * self.S
        self.diag_coeffs = pretrain_coeffs(self.hp)
        self.live = [True] * self.S  # False once a seed finished or diverged
        self.summaries: list[dict[str, Any] | None] = [None] * self.S

    def _open(self, cfg: RunConfig, out: Path, device: str) -> RunContext:
        """RunContext.open, with the dataset read once for the whole pack."""
        if not self.ctxs:
            return RunContext.open(cfg, out, device)
        c0 = self.ctxs[0]
        seed_everything(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        n_eval = int(cfg.hyperparameters["eval_episodes"])
        return dataclasses.replace(c0, cfg=cfg, out=out, gen=gen,
                                   eval_envs=[c0.task.make_eval_env() for _ in range(n_eval)],
                                   online_env=c0.task.make_env(), log=run_logger(out))

    # ------------------------------------------------------------------ seeds
    def _alive(self) -> list[int]:
        return [s for s in range(self.S) if self.live[s]]

    @property
    def lead(self) -> RunState:
        """The state of a seed still in the pack (they share every schedule counter)."""
        return self.cores[self._alive()[0]].state

    def _stop(self, s: int, exc: Diverged | None = None) -> None:
        """Seed s leaves the pack: diverged (`exc`) or done; its summary is written now."""
        core = self.cores[s]
        core.conclude(exc)
        self.live[s] = False
        self.summaries[s] = core.recorder.finish(core.state)

    def _each(self, fn: Any) -> None:
        """fn(s) for every seed in the pack; a Diverged stops that seed only."""
        for s in self._alive():
            try:
                fn(s)
            except Diverged as exc:
                self._stop(s, exc)

    def save_all(self) -> None:
        for s in self._alive():
            # the checkpointer records the global torch stream: seed s's stand-in, for now
            torch.set_rng_state(self.agent.gens[s].get_state())
            self.cores[s].save_checkpoint()

    # ------------------------------------------------------------------ updates
    def _sampler(self, trajectories: list) -> SegmentSampler:
        hp = self.hp
        return SegmentSampler(trajectories, self.offline.state_mean, self.offline.state_std,
                              hp["context_len"], hp["reward_scale"], self.ctxs[0].device)

    def train_units(self, samplers: Sequence[SegmentSampler], n: int, rl: float,
                    sup: float) -> Metrics:
        B = self.hp["batch_size"]
        gens = [ctx.gen for ctx in self.ctxs]

        def sample() -> dict[str, torch.Tensor]:
            return stack_batches([sp.sample(B, g) for sp, g in zip(samplers, gens, strict=True)])

        metrics: Metrics = {}
        for _ in range(n):
            metrics.update(self.agent.train_unit(sample, rl, sup))
            for s in self._alive():
                self.cores[s].count_update()
        if "critic_loss" in metrics:
            for s in self._alive():
                self.cores[s].state.last_critic_loss = float(metrics["critic_loss"][s])
        return metrics

    @staticmethod
    def _seed_metrics(m: Metrics, s: int) -> Metrics:
        return {k: v[s] for k, v in m.items()}

    # ------------------------------------------------------------------ phases
    def pretrain(self) -> None:
        """`RunCore.chunked_pretrain` for every seed at once."""
        hp = self.hp
        sampler = self._sampler(self.offline.trajectories)  # stateless: shared by the seeds
        self.diag_samplers = [sampler] * self.S
        self.diag_coeffs = pretrain_coeffs(hp)
        while self._alive() and self.lead.pretrain_iter < hp["pretrain_iters"]:
            while self._alive() and self.lead.pretrain_units < hp["pretrain_updates"]:
                n = min(hp["checkpoint_every_updates"], hp["pretrain_updates"] - self.lead.pretrain_units)
                m = self.train_units([sampler] * self.S, n, *self.diag_coeffs)

                def chunk_done(s: int, n: int = n, m: Metrics = m) -> None:
                    st = self.cores[s].state
                    st.pretrain_units += n
                    self.cores[s].check(self._seed_metrics(m, s), f"pretraining update {st.gradient_steps}")

                self._each(chunk_done)
                self.save_all()
            if not self._alive():
                return
            it = self.lead.pretrain_iter
            self.evaluate_all(self._alive())
            self._each(lambda s, it=it: self.cores[s].evaluate("pretrain", it))

            def iteration_done(s: int) -> None:
                st = self.cores[s].state
                st.pretrain_iter += 1
                st.pretrain_units = 0

            self._each(iteration_done)
            self.save_all()

    def online(self) -> None:
        hp = self.hp
        if self.lead.phase == "pretrain":
            self.agent.reset_targets()
            if hp["fresh_optimizers_online"]:
                self.agent.reset_optimizers()
            for s in self._alive():
                self.buffers[s] = TrajectoryBuffer(hp["replay_size"], self.offline.trajectories)
                self.cores[s].state.phase = "online"
            self.save_all()
        rl, sup = hp["rl_coeff"], hp["sup_coeff"]
        kept: list[SegmentSampler | None] = list(self.diag_samplers)
        while self._alive() and self.lead.phase == "online":
            it = self.lead.online_iter
            new = self.collect_all()
            for s in self._alive():
                buf = self.buffers[s]
                if buf is None:
                    raise OdtbenchError(f"seed {self.cfgs[s].seed} is online without a buffer")
                buf.add(new[s])
                kept[s] = self._sampler(buf.trajectories)
            live = kept[self._alive()[0]]
            assert live is not None
            # a seed out of the pack keeps its last sampler (its numbers are not used)
            samplers = [sp if sp is not None else live for sp in kept]
            self.diag_samplers, self.diag_coeffs = list(kept), (rl, sup)
            m = self.train_units(samplers, hp["online_updates_per_iter"], rl, sup)
            due = []
            for s in self._alive():
                st = self.cores[s].state
                last = st.online_transitions >= hp["online_budget"] or it + 1 >= hp["max_online_iters"]
                if (it + 1) % hp["eval_interval"] == 0 or last:
                    due.append(s)
            self.evaluate_all(due)

            def iteration_done(s: int, it: int = it, m: Metrics = m) -> None:
                # it ends with the seed's checkpoint: seed s's stand-in as the global stream
                torch.set_rng_state(self.agent.gens[s].get_state())
                self.cores[s].end_online_iteration(it, self._seed_metrics(m, s))

            self._each(iteration_done)
            for s in self._alive():
                if self.cores[s].state.phase == "done":
                    self._stop(s)

    # ------------------------------------------------------------------ episodes
    def evaluate_all(self, seeds: Sequence[int]) -> None:
        """Every listed seed's evaluation episodes, in lockstep; handed to its evaluator."""
        if not seeds:
            return
        hp = self.hp
        n = int(hp["eval_episodes"])
        grid = _EpisodeGrid(self, n, hp.get("eval_rtg", 0.0))
        for s in seeds:
            for j, seed in enumerate(eval_seeds(self.cfgs[s].seed, n)):
                grid.start(s, j, self.ctxs[s].eval_envs[j], seed)
        done: dict[tuple[int, int], Trajectory] = {}
        grid.run(deterministic=True, noise_std=0.0, on_end=lambda s, j: done.__setitem__((s, j), grid.trajectory(s, j)))
        for s in seeds:
            trajs = [done[(s, j)] for j in range(n)]
            succ = grid.success[s] if grid.any_success[s] else None
            self.evaluators[s].result = RolloutResult(
                trajs, grid.rewards[s].sum(1, dtype=np.float64),
                np.array([len(t) for t in trajs], dtype=np.int64), None if succ is None else succ.copy())

    def collect_all(self) -> list[list[Trajectory]]:
        """`Collector.collect` for every seed in the pack, one online env each, in lockstep:
        a seed starts its next episode while the others are still in theirs."""
        hp = self.hp
        stochastic = self.agent.stochastic
        grid = _EpisodeGrid(self, 1, hp.get("online_rtg", 0.0))
        new: list[list[Trajectory]] = [[] for _ in range(self.S)]
        counts = [0] * self.S

        def start(s: int) -> None:
            st = self.cores[s].state
            grid.start(s, 0, self.ctxs[s].online_env, online_seeds(self.cfgs[s].seed, st.episodes)[0])

        def on_end(s: int, j: int) -> None:
            t = grid.trajectory(s, j)
            t.online = True
            new[s].append(t)
            counts[s] += len(t)
            st = self.cores[s].state
            st.episodes += 1
            self.cores[s].collecting(counts[s])
            if counts[s] < hp["min_transitions_per_iter"]:
                start(s)

        for s in self._alive():
            start(s)
        grid.run(deterministic=not stochastic, noise_std=0.0 if stochastic else hp["expl_noise"],
                 on_end=on_end)
        for s in self._alive():
            st = self.cores[s].state
            st.online_transitions += counts[s]
            OnlineEpisodeStats.add(st.online_stats, new[s], self.norm.mean, self.norm.std)
            self.cores[s].progress.activity = "updating"
        return new

    # ------------------------------------------------------------------ driver
    def execute(self) -> list[dict[str, Any]]:
        """Run the pack (the caller holds the run locks and prepared the directories)."""
        for core in self.cores:
            core.restart_clock()
        loaded = []
        for s, core in enumerate(self.cores):
            loaded.append(core.load_checkpoint())
            if loaded[-1]:
                self.agent.gens[s].set_state(torch.get_rng_state())
            else:
                core.recorder.start(core.state, [])
        if any(loaded):
            if not all(loaded) or not self._same_point():
                raise OdtbenchError("packed seeds resume from different points; run them "
                                    "with run_packed, which packs each point separately")
            self.agent.load_seed_states([self.pending[s] for s in range(self.S)])
        c0 = self.cfgs[0]
        seeds = ",".join(str(c.seed) for c in self.cfgs)
        if any(loaded):  # one line for the pack: its seeds resume from the same point
            self.cores[0].say_resumed(self.loops[0].units,
                                      f"{c0.method} on {c0.task_key} seeds {seeds} (packed)")
        for s, core in enumerate(self.cores):
            core.progress = Progress(f"{c0.method} {c0.task_key} s{seeds}", core.ctx.log,
                                     enabled=None if s == 0 else False)
            if core.state.curve:
                core.progress.last_score = float(core.state.curve[-1]["score_mean"])
            core.progress.eval_s = core.state.eval_s
            core.progress.evals_ahead = self.loops[s].units.evals_ahead
        stopped: BaseException | None = None
        try:
            with sigterm_interrupts():
                self._drive()
        except (KeyboardInterrupt, SystemExit) as exc:
            stopped = exc
            raise
        finally:
            for core in self.cores:
                core.progress.close()
                core.recorder.close()
                if stopped is not None:  # after the display's last line: log.txt's last word
                    core.record_interrupt(stopped)
        return [s for s in self.summaries if s is not None]

    def _drive(self) -> None:
        """The pack's phases (execute opened their progress displays)."""
        if self.lead.phase == "pretrain":
            for s, core in enumerate(self.cores):
                units = self.loops[s].units
                core.progress.phase("pretraining", units.pretrain_total(), units.phase_done())
            self.pretrain()
        if self._alive() and self.lead.phase != "done":
            for core in self.cores:
                core.progress.phase("online", int(self.hp["online_budget"]),
                                    core.state.online_transitions, unit="transitions")
            self.online()
        for s in self._alive():
            self._stop(s)

    def _same_point(self) -> bool:
        keys = {_resume_point(c.state.to_dict()) for c in self.cores}
        return len(keys) == 1


class _EpisodeGrid:
    """S x n episodes stepped together: one policy call per step for every live episode of
    every seed, each episode exactly as `odtbench.evaluation.rollout` steps it."""

    def __init__(self, run: PackedDTRun, n: int, target_rtg: float):
        hp = run.hp
        self.pack, self.n = run, n
        self.max_len, self.K = int(hp["max_episode_len"]), int(hp["eval_context_len"])
        self.reward_scale = float(hp["reward_scale"])
        self.rtg0 = target_rtg * self.reward_scale
        S, L, sd, ad = run.S, self.max_len + 1, run.state_dim, run.act_dim
        self.mean = torch.as_tensor(run.norm.mean, dtype=torch.float32)
        self.std = torch.as_tensor(run.norm.std, dtype=torch.float32)
        self.states = torch.zeros(S, n, L, sd)
        self.actions = torch.zeros(S, n, L, ad)
        self.rtg = torch.zeros(S, n, L)
        self.raw_obs = np.zeros((S, n, L, sd), dtype=np.float32)
        self.rewards = np.zeros((S, n, self.max_len), dtype=np.float32)
        self.t = np.zeros((S, n), dtype=np.int64)
        self.alive = np.zeros((S, n), dtype=bool)
        self.truncated = np.zeros((S, n), dtype=bool)
        self.success = np.zeros((S, n), dtype=bool)
        self.any_success = np.zeros(S, dtype=bool)
        self.envs: dict[tuple[int, int], Any] = {}

    def start(self, s: int, j: int, env: Any, seed: int) -> None:
        for arr in (self.states, self.actions, self.rtg):
            arr[s, j].zero_()
        self.raw_obs[s, j] = 0.0
        self.rewards[s, j] = 0.0
        self.t[s, j], self.alive[s, j] = 0, True
        self.truncated[s, j] = self.success[s, j] = False
        self.envs[(s, j)] = env
        obs, _ = env.reset(seed=int(seed))
        self.raw_obs[s, j, 0] = np.asarray(obs, dtype=np.float32).reshape(-1)
        self.states[s, j, 0] = (torch.as_tensor(self.raw_obs[s, j, 0]) - self.mean) / self.std
        self.rtg[s, j, 0] = self.rtg0

    def _contexts(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor | None]:
        """(S, n, T, ·) contexts of the live episodes; left-padded with a mask where their
        lengths differ (a padded key's attention weight is exactly 0)."""
        ts = self.t[ids[:, 0], ids[:, 1]]
        if (ts == ts[0]).all():
            t = int(ts[0])
            lo = max(0, t + 1 - self.K)
            sl = slice(lo, t + 1)
            return self.states[:, :, sl], self.actions[:, :, sl], self.rtg[:, :, sl], None
        lens = np.minimum(ts + 1, self.K)
        T = int(lens.max())
        S, n = self.pack.S, self.n
        st = torch.zeros(S, n, T, self.states.shape[-1])
        ac = torch.zeros(S, n, T, self.actions.shape[-1])
        rt = torch.zeros(S, n, T)
        mask = torch.ones(S, n, T)
        for (s, j), t, ln in zip(ids, ts, lens, strict=True):
            lo = t + 1 - ln
            st[s, j, T - ln:] = self.states[s, j, lo:t + 1]
            ac[s, j, T - ln:] = self.actions[s, j, lo:t + 1]
            rt[s, j, T - ln:] = self.rtg[s, j, lo:t + 1]
            mask[s, j, :T - ln] = 0.0
        return st, ac, rt, mask

    def run(self, deterministic: bool, noise_std: float, on_end: Any) -> None:
        agent, ctxs = self.pack.agent, self.pack.ctxs
        while True:
            ids = np.argwhere(self.alive)
            if len(ids) == 0:
                return
            states, actions, rtg, mask = self._contexts(ids)
            sampled = sorted({int(s) for s in ids[:, 0]}) if not deterministic else []
            act = agent.act(states, actions, rtg, mask, deterministic=deterministic,
                            sample_seeds=sampled)
            ended = []
            for s, j in ids:
                t = int(self.t[s, j])
                a = act[s, j:j + 1]
                if noise_std > 0:
                    a = a + noise_std * torch.randn(a.shape, generator=ctxs[s].gen)
                a = a.clamp(-1.0, 1.0)
                self.actions[s, j, t] = a[0]
                obs, r, term, trunc, info = self.envs[(s, j)].step(a.numpy()[0])
                self.raw_obs[s, j, t + 1] = np.asarray(obs, dtype=np.float32).reshape(-1)
                self.rewards[s, j, t] = r
                if "success" in info or "is_success" in info:
                    self.any_success[s] = True
                    self.success[s, j] |= bool(info.get("success", info.get("is_success", False)))
                self.states[s, j, t + 1] = (torch.as_tensor(self.raw_obs[s, j, t + 1]) - self.mean) / self.std
                self.rtg[s, j, t + 1] = self.rtg[s, j, t] - torch.as_tensor(self.rewards[s, j, t]) * self.reward_scale
                self.t[s, j] = t + 1
                if term or trunc or t + 1 == self.max_len:
                    self.alive[s, j] = False
                    self.truncated[s, j] = not term
                    ended.append((int(s), int(j)))
            for s, j in ended:
                on_end(s, j)

    def trajectory(self, s: int, j: int) -> Trajectory:
        """The episode in slot (s, j) as `rollout` records it."""
        return episode_trajectory(self.raw_obs[s, j], self.actions[s, j], self.rewards[s, j],
                                  int(self.t[s, j]), bool(self.truncated[s, j]))


def _resume_point(state: dict[str, Any]) -> tuple:
    return tuple(state.get(k) for k in ("phase", "pretrain_iter", "pretrain_units", "online_iter",
                                        "gradient_steps", "status"))


def run_packed(cfgs: Sequence[RunConfig], outs: Sequence[Path | str],
               device: str = "cpu") -> list[dict[str, Any]]:
    """Run (or resume, or return the finished summaries of) S seeds' runs as packs: seeds
    whose directories are at the same point run as one pack. Summaries in seed order."""
    from odtbench.rundir import ensure_prepared
    from odtbench.runlock import run_lock

    check_packable(cfgs)
    paths = [Path(o) for o in outs]
    with ExitStack() as stack:
        for out in paths:
            stack.enter_context(run_lock(out))
            ensure_prepared(out)
        groups: dict[tuple, list[int]] = {}
        for i, out in enumerate(paths):
            if (out / "summary.json").exists():
                continue
            payload = load_checkpoint(out / "checkpoint" / "state.pt")
            key = ("new",) if payload is None else _resume_point(payload["state"])
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            PackedDTRun([cfgs[i] for i in idx], [paths[i] for i in idx], device).execute()
        return [json.loads((out / "summary.json").read_text()) for out in paths]


__all__ = ["PackedDTRun", "run_packed"]
