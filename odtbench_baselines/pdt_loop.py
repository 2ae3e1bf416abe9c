"""PDT's offline->online protocol (docs/methods/pdt.md §3) on the suite's DT loop.

    pretrain   `pretrain_iters` x `pretrain_updates` reward-free updates on length-weighted
               batches (40 x 1000 = the study's 40K); evaluation after each iteration with z
               from the prior (F is untrained) -> the "before finetuning" score
    warm-up    empty trajectory FIFO (no offline seeding); rounds of `pdt_warmup_envs`
               parallel episodes, z ~ prior, sampled actions, until `pdt_warmup_samples`
    F warm-up  `pdt_return_warmup_iters` passes over `pdt_return_warmup_batches`
               return-weighted batches (trajectories fixed, ends re-drawn), F's heads only
    online     iterations: collect (return-guided z, sampled actions), then
               `online_updates_per_iter` updates of L_ft on return-weighted batches;
               evaluate (guided z, deterministic actions) every `eval_interval` iterations

Online budget (docs/methods/pdt.md §5). The official code stops after 1500 iterations or 210K
post-warm-up transitions, whichever comes first. We run PDT on the study's budgets instead,
the same as the DT family: until `online_budget` online transitions (500K on MuJoCo) or
`max_online_iters` iterations; the 210K cap is dropped. The warm-up episodes are online
interaction, so they count towards `online_transitions` (the official logs leave them out).
An iteration collects one episode on every dataset, as the official code: PDT's preset sets
`min_transitions_per_iter` to 0, where the ODT family collects >= 1000 transitions per
iteration on random datasets (paper Tab. 8; docs/fidelity.md). On short-episode data the
`max_online_iters` cap (1500 on MuJoCo, the official one too) then ends a run early.

Composed on the run core (odtbench/runcore/): evaluation rows, online collection, result
files, checkpoints, the pretraining schedule and the end of an iteration (evaluation schedule,
budget, checkpoint) are the ones every trajectory loop shares; the LAMB/scheduler state
carries over from pretraining to finetuning (warm-up is not restarted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from odtbench.data.replay import TrajectoryBuffer, prepare_offline
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.runcore.context import RunContext
from odtbench.runcore.core import IterationUnits, Metrics, RunCore
from odtbench.runcore.evaluation import online_seeds, rollout
from odtbench.runcore.evaluator import Collector, StateNorm
from odtbench.runcore.state import PDTRunState
from odtbench_baselines import PDTHyperparameters
from odtbench_baselines.pdt import FutureSampler, PDTAgent


class PDTRun:
    """One PDT run on one task and seed: PDT's protocol on the run core."""

    def __init__(self, cfg: RunConfig, out_dir: Path | str, device: str = "cpu"):
        self.hp = hp = cfg.typed_as(PDTHyperparameters)
        if int(hp.pdt_warmup_samples) > int(hp.online_budget):
            raise OdtbenchError(f"pdt_warmup_samples {hp.pdt_warmup_samples} exceeds "
                                f"online_budget {hp.online_budget}; lower it")
        self.ctx = ctx = RunContext.open(cfg, out_dir, device)
        # the official loader inherits ODT's return sort and its dropped trajectory
        self.offline = prepare_offline(ctx.trajectories, self.hp.drop_lowest_return)
        self.norm = StateNorm(self.offline.state_mean, self.offline.state_std)
        S = self.offline.trajectories[0].observations.shape[1]
        A = self.offline.trajectories[0].actions.shape[1]
        self.agent = PDTAgent(self.hp, S, A, device=device)
        self.warmup_envs = [ctx.task.make_env() for _ in range(self.hp.pdt_warmup_envs)]
        self.buffer: TrajectoryBuffer | None = None
        self.core = RunCore(ctx, PDTRunState(), self.agent, self.norm)
        self.units = IterationUnits(self.core)
        self.collector = Collector(ctx, self.norm, on_episode=self.core.collecting)

    @property
    def state(self) -> PDTRunState:
        st = self.core.state
        assert isinstance(st, PDTRunState)
        return st

    # ------------------------------------------------------------------ the Loop protocol
    def checkpoint_extras(self) -> dict[str, Any]:
        return {"buffer": None if self.buffer is None else self.buffer.state_dict()}

    def restore_extras(self, payload: dict[str, Any]) -> None:
        if payload["buffer"] is not None:
            self.buffer = TrajectoryBuffer.from_state_dict(payload["buffer"])

    def diagnostics_extras(self) -> dict[str, Any]:
        from odtbench.runfiles.diagnostics import online_share

        trajs = self.buffer.trajectories if self.buffer is not None else None
        return {"buffer_online_share": online_share(trajs) if trajs else 0.0}

    def finish(self) -> None:
        pass

    # ------------------------------------------------------------------ training
    def _sampler(self, trajs: list, weighting: str) -> FutureSampler:
        return FutureSampler(trajs, self.offline.state_mean, self.offline.state_std,
                             self.hp.context_len, self.hp.reward_scale, weighting,
                             self.ctx.device)

    def _train(self, sampler: FutureSampler, n: int, with_return: bool) -> Metrics:
        B, gen = self.hp.batch_size, self.ctx.gen
        return self.core.updates(n, lambda: self.agent.update(sampler.sample(B, gen), with_return))

    # ------------------------------------------------------------------ phases
    def pretrain(self) -> None:
        """The trajectory loops' pretraining schedule with PDT's reward-free updates on
        length-weighted batches; F is untrained before finetuning."""
        self.agent.mode = "prior"
        sampler = self._sampler(self.offline.trajectories, "length")
        self.core.chunked_pretrain(lambda n: self._train(sampler, n, with_return=False))

    def _data_warmup(self) -> None:
        hp, st = self.hp, self.state
        assert self.buffer is not None
        self.agent.mode = "prior"
        n_envs = len(self.warmup_envs)
        while st.warmup_transitions < hp.pdt_warmup_samples:
            seeds = online_seeds(self.ctx.seed, st.episodes, n_envs)
            res = rollout(self.agent, self.warmup_envs, seeds, state_mean=self.norm.mean,
                          state_std=self.norm.std, target_rtg=0.0, reward_scale=0.0,
                          context_len=hp.eval_context_len, max_len=hp.max_episode_len,
                          deterministic=False)
            self.buffer.add(res.trajectories)
            n = int(res.lengths.sum())
            st.warmup_transitions += n
            st.online_transitions += n
            st.episodes += n_envs
            self.core.progress.update(st.online_transitions)
            self.core.save_checkpoint()
        st.phase = "return_warmup"
        self.core.save_checkpoint()

    def _return_warmup(self) -> None:
        hp, st = self.hp, self.state
        assert self.buffer is not None
        sampler = self._sampler(self.buffer.trajectories, "return")
        B, gen = hp.batch_size, self.ctx.gen
        trajs = [sampler.draw_trajectories(B, gen) for _ in range(hp.pdt_return_warmup_batches)]
        m: dict[str, torch.Tensor] = {}
        for _ in range(hp.pdt_return_warmup_iters):
            for traj in trajs:
                m = self.agent.return_warmup_step(sampler.sample(B, gen, traj=traj))
        self.core.check(m, "return-predictor warm-up")
        st.phase = "online"
        self.core.save_checkpoint()

    def online(self) -> None:
        hp, st = self.hp, self.state
        if st.phase == "pretrain":
            self.buffer = TrajectoryBuffer(hp.replay_size, [])  # no offline seeding
            st.phase, st.warmup_transitions = "online_warmup", 0
            self.core.save_checkpoint()
        if st.phase == "online_warmup":
            self._data_warmup()
        if st.phase == "return_warmup":
            self._return_warmup()
        while st.phase == "online":
            it = st.online_iter
            self.agent.mode = "guided"
            assert self.buffer is not None
            self.buffer.add(self.collector.collect(self.agent, st))  # sampled actions
            self.core.progress.activity = "updating"
            sampler = self._sampler(self.buffer.trajectories, "return")
            m = self._train(sampler, hp.online_updates_per_iter, with_return=True)
            self.core.end_online_iteration(it, m)

    def execute(self) -> dict[str, Any]:
        return self.core.execute(self)


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> dict:
    """Run (or resume, or return the finished summary of) one PDT run."""
    return PDTRun(cfg, out_dir, device=device).execute()
