"""The offline→online protocol shared by the ODT family (docs/methods/dt-family.md §5).

pretrain (critic always trained; actor supervised unless rl_from_start) → hard-reset the
targets → online iterations: collect >= min transitions (>= 1 episode) into the trajectory
FIFO, `online_updates_per_iter` actor updates (each with its `actor_update_interval` critic
updates, `DTAgent.train_unit`), evaluate every `eval_interval` iterations and at the end.
A run checkpoints on a schedule and resumes from its last checkpoint with identical numbers
on CPU. Everything that is not the DT protocol lives in the run core (odtbench/runcore/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.data.replay import SegmentSampler, TrajectoryBuffer, prepare_offline
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.hyperparameters.schemas import DTHyperparameters
from odtbench.methods.dt_agent import SPEED_ENV, DTAgent, SpeedOptions
from odtbench.runcore.context import RunContext
from odtbench.runcore.core import Diverged, IterationUnits, Metrics, RunCore, divergence_check
from odtbench.runcore.evaluator import Collector, StateNorm
from odtbench.runcore.state import RunState
from odtbench.runfiles.diagnostics import online_share
from odtbench.runfiles.results import CURVE_COLUMNS


def pretrain_coeffs(hp: DTHyperparameters) -> tuple[float, float]:
    """(rl, sup) of pretraining: supervised only unless rl_from_start (AntMaze),
    docs/methods/dt-family.md §5."""
    return (hp.rl_coeff, hp.sup_coeff) if hp.rl_from_start else (0.0, 1.0)


class DTRun:
    """One run of one DT-family method on one task and seed: the DT protocol on the run core."""

    def __init__(self, cfg: RunConfig, out_dir: Path | str, device: str = "cpu",
                 speed: SpeedOptions | None = None):
        self.hp = cfg.typed_as(DTHyperparameters)  # what this loop and its agent read
        self.ctx = ctx = RunContext.open(cfg, out_dir, device)
        self.offline = prepare_offline(ctx.trajectories, self.hp.drop_lowest_return)
        norm = StateNorm(self.offline.state_mean, self.offline.state_std)
        # Speed options (docs/performance.md): execution only, recorded in config.json; from
        # the caller (`odtbench run --speed`) or $ODTBENCH_SPEED ("bf16,path=fast,...");
        # the reference path, all off, by default.
        self.speed = speed if speed is not None else SpeedOptions.parse(os.environ.get(SPEED_ENV))
        # data resident on the GPU: batches draw from a generator there (its own stream)
        self.sample_gen = ctx.gen
        generators = [ctx.gen]
        if self.speed.resident_sampling and torch.device(device).type != "cpu":
            self.sample_gen = torch.Generator(device).manual_seed(cfg.seed)
            generators.append(self.sample_gen)
        S = self.offline.trajectories[0].observations.shape[1]
        A = self.offline.trajectories[0].actions.shape[1]
        self.agent = DTAgent(self.hp, S, A, device=device, speed=self.speed)
        # the path that runs: "fast" falls back to the reference where the kind has none
        path = "fast" if self.agent.fast is not None else "reference"
        self.core = RunCore(ctx, RunState(), self.agent, norm, generators, self.speed.enabled,
                            speed=path)
        self.units = IterationUnits(self.core)
        self.collector = Collector(ctx, norm, on_episode=self.core.collecting)
        self.probe = ctx.task.make_probe()  # the toy's Fig. 2 record; None elsewhere
        self.buffer: TrajectoryBuffer | None = None
        # what the gradient diagnostics sample from, and with which (rl, sup) coefficients
        self._diag_sampler: SegmentSampler | None = None
        self._diag_coeffs = pretrain_coeffs(self.hp)

    @property
    def state(self) -> RunState:
        return self.core.state

    # ------------------------------------------------------------------ the Loop protocol
    def checkpoint_extras(self) -> dict[str, Any]:
        """The trajectory FIFO and the toy probe."""
        return {"buffer": None if self.buffer is None else self.buffer.state_dict(self.offline.trajectories),
                "probe": self.probe.to_json() if self.probe else None}

    def restore_extras(self, payload: dict[str, Any]) -> None:
        if payload["buffer"] is not None:
            self.buffer = TrajectoryBuffer.from_state_dict(payload["buffer"],
                                                          self.offline.trajectories)
        if self.probe and payload["probe"]:
            self.probe.load(payload["probe"])

    def diagnostics_extras(self) -> dict[str, Any]:
        """The buffer's online share and the actor's two gradient terms, on a batch from a
        generator of its own (the run's sampling stream is untouched)."""
        trajs = self.buffer.trajectories if self.buffer is not None else None
        d: dict[str, Any] = {"buffer_online_share": online_share(trajs) if trajs else 0.0}
        if self._diag_sampler is not None:
            st = self.state
            gen = torch.Generator().manual_seed(self.ctx.seed * 1_000_003 + st.gradient_steps)
            batch = self._diag_sampler.sample(self.hp.batch_size, gen)
            d.update(self.agent.actor_gradient_stats(batch, *self._diag_coeffs))
        d.update(self.agent.kind_diagnostics())  # the RL kind's columns (PPO's pi/pi_old)
        return d

    def finish(self) -> None:
        if self.probe and self.probe.epochs:  # none when it diverged in pretraining
            self.core.recorder.write_json("probes.json", self.probe.to_json())

    # ------------------------------------------------------------------ training
    def _sampler(self, trajectories: list) -> SegmentSampler:
        hp = self.hp
        return SegmentSampler(trajectories, self.offline.state_mean, self.offline.state_std,
                              hp.context_len, hp.reward_scale, self.ctx.device)

    def train_units(self, sampler: SegmentSampler, n: int, rl: float, sup: float) -> Metrics:
        """n actor updates, each with its critic updates on fresh batches."""
        B, gen = self.hp.batch_size, self.sample_gen

        def unit() -> Metrics:
            return self.agent.train_unit(lambda: sampler.sample(B, gen), rl, sup)

        return self.core.updates(n, unit)

    def pretrain(self) -> None:
        sampler = self._sampler(self.offline.trajectories)
        self._diag_sampler, self._diag_coeffs = sampler, pretrain_coeffs(self.hp)
        self.core.chunked_pretrain(lambda n: self.train_units(sampler, n, *self._diag_coeffs))
        if self.probe:
            self.probe.record(self.agent, 0, self.state.gradient_steps, [], self._norm_state0(),
                              self.hp.reward_scale, self._has_critic)

    @property
    def _has_critic(self) -> bool:
        return self.agent.uses_critic and self.hp.rl_coeff > 0

    def _norm_state0(self) -> np.ndarray:
        return self.core.norm(self.offline.trajectories[0].observations[0])

    def collect(self) -> list:
        new = self.collector.collect(self.agent, self.state)
        self.core.progress.activity = "updating"
        return new

    def online(self) -> None:
        hp, st = self.hp, self.state
        if st.phase == "pretrain":
            # A new trainer at the phase switch hard-resets both targets (docs/methods/dt-family.md §5).
            self.agent.reset_targets()
            if hp.fresh_optimizers_online:  # the toy's protocol (docs/fidelity.md)
                self.agent.reset_optimizers()
            self.buffer = TrajectoryBuffer(hp.replay_size, self.offline.trajectories)
            st.phase = "online"
            self.core.save_checkpoint()
        rl, sup = hp.rl_coeff, hp.sup_coeff
        while self.state.phase == "online":
            it = self.state.online_iter
            new = self.collect()
            assert self.buffer is not None
            self.buffer.add(new)
            sampler = self._sampler(self.buffer.trajectories)
            if hp.online_updates_mode == "epoch":  # toy: one pass over the data (docs/toy.md)
                n_units = max(1, sampler.num_transitions // hp.batch_size)
            else:
                n_units = hp.online_updates_per_iter
            self._diag_sampler, self._diag_coeffs = sampler, (rl, sup)
            self.agent.begin_update_round()  # the RL kind's round hook (PPO: pi_old)
            m = self.train_units(sampler, n_units, rl, sup)
            if self.probe:
                acts = [float(a) for t in new for a in t.actions.reshape(-1)]
                self.probe.record(self.agent, it + 1, self.state.gradient_steps, acts,
                                  self._norm_state0(), hp.reward_scale, self._has_critic)
            self.core.end_online_iteration(it, m)

    def execute(self) -> dict[str, Any]:
        return self.core.execute(self)


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu",
        speed: SpeedOptions | None = None) -> dict:
    """Run (or resume, or return the finished summary of) one DT-family run."""
    return DTRun(cfg, out_dir, device=device, speed=speed).execute()


__all__ = ["run", "DTRun", "Diverged", "divergence_check", "CURVE_COLUMNS"]
