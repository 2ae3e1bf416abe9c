"""The run core: one driver and the shared pieces every loop is composed of.

A loop (DT family `odtbench.runcore.dt_loop`, MLP baselines, PDT) builds a `RunContext`, its agent and a
`RunCore`, and implements the `Loop` protocol: its phases and what its checkpoint adds. The
core owns the rest: the typed state, the update counter (the one place updates are counted and
where the resume tests' SIGKILL fires), divergence checks, evaluation rows and diagnostics,
checkpoints, the progress display, the run-directory lock and the result files.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import torch

from odtbench.agents.protocol import Agent, CriticProbe
from odtbench.errors import Terminated
from odtbench.hyperparameters.schemas import DTHyperparameters, TrajectoryTransformer
from odtbench.hyperparameters.schemas import Protocol as HPProtocol
from odtbench.runcore.checkpointer import Checkpointer
from odtbench.runcore.context import RunContext
from odtbench.runcore.evaluator import Evaluator, StateNorm
from odtbench.runcore.recorder import Recorder
from odtbench.runcore.state import RunState
from odtbench.runfiles.diagnostics import OnlineEpisodeStats, critic_vs_returns
from odtbench.runfiles.progress import Progress

# Test hook: SIGKILL this process right after the given update (tests/test_loop.py); another
# signal by name with ODTBENCH_KILL_SIGNAL=TERM / INT (tests/test_interrupted.py).
KILL_ENV = "ODTBENCH_KILL_AT_UPDATE"
_KILL_AT = int(os.environ.get(KILL_ENV, "-1"))
_KILL_SIGNAL = getattr(signal, "SIG" + os.environ.get("ODTBENCH_KILL_SIGNAL", "KILL"), signal.SIGKILL)

Metrics = dict[str, torch.Tensor]
# log.txt's line when a run stops on Ctrl-C or SIGTERM: `odtbench status` reads it
# ("interrupted", resumable; not "failed")
INTERRUPTED_PREFIX = "interrupted"


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler's or a user's `kill`) stops the run as Ctrl-C does, so it records
    where it stopped; only where nobody else handles SIGTERM (the default action would end the
    process without a word)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Diverged(Exception):
    """A loss, critic value or evaluation return became non-finite: the run stops."""


def divergence_check(metrics: Mapping[str, torch.Tensor | float], q_bound: float,
                     where: str) -> str | None:
    """One host sync per chunk. Non-finite values raise Diverged (the run stops); |Q| past the
    bound returns the reason to record (the run goes on, evaluating on schedule, so its
    scores are the ones the study would have recorded: docs/fidelity.md); else None."""
    if not metrics:
        return None
    vals = torch.stack([torch.as_tensor(v).detach().float().reshape(()) for v in metrics.values()])
    if not bool(torch.isfinite(vals).all()):
        raise Diverged(f"non-finite loss at {where}")
    q = metrics.get("q_mean")
    if q is not None and abs(float(q)) > q_bound:
        return f"|Q| {abs(float(q)):.3g} > {q_bound:g} at {where}"
    return None


class ProgressUnits(Protocol):
    """What the progress display counts in each phase, and how far along it is."""

    def pretrain_total(self) -> int: ...
    def phase_done(self) -> int: ...
    def live_done(self) -> int | None: ...  # after one update (None: only at iteration ends)
    def evals_ahead(self, k: int) -> int: ...


class Loop(Protocol):
    """What a method's loop provides to the core."""

    @property
    def units(self) -> ProgressUnits: ...

    def pretrain(self) -> None: ...
    def online(self) -> None: ...
    def checkpoint_extras(self) -> dict[str, Any]: ...
    def restore_extras(self, payload: dict[str, Any]) -> None: ...
    def diagnostics_extras(self) -> dict[str, Any]: ...
    def finish(self) -> None: ...


class RunCore:
    """State, counters, evaluation, checkpoints and the driver of one run."""

    def __init__(self, ctx: RunContext, state: RunState, agent: Agent, norm: StateNorm,
                 generators: list[torch.Generator] | None = None,
                 speed_options: list[str] | None = None, speed: str = "reference"):
        self.ctx, self.state, self.agent, self.norm = ctx, state, agent, norm
        self.checkpointer = Checkpointer(ctx.out, generators or [ctx.gen])
        self.recorder = Recorder(ctx)
        self.evaluator = Evaluator(ctx, norm)
        self.progress = Progress("", enabled=False)  # until `execute` opens the run's own
        self.speed_options = speed_options or []
        self.speed = speed  # the update path that runs ("reference" | "fast"), for config.json
        self.loop: Loop | None = None
        self._t0 = time.perf_counter()

    @property
    def hp(self) -> HPProtocol:
        """The run's typed hyperparameters: the protocol keys every loop has."""
        return self.ctx.typed

    @property
    def seq_hp(self) -> TrajectoryTransformer:
        """The trajectory loops' (DT family, PDT) iteration keys."""
        return self.ctx.cfg.typed_as(TrajectoryTransformer)

    # ------------------------------------------------------------------ counting updates
    def count_update(self, counter: str = "gradient_steps") -> None:
        """One more update of `counter`: the one update counter of every loop."""
        n = getattr(self.state, counter) + 1
        setattr(self.state, counter, n)
        if n == _KILL_AT:
            os.kill(os.getpid(), _KILL_SIGNAL)
        self.progress.steps = n
        self.progress.update(self.loop.units.live_done() if self.loop else None)

    def updates(self, n: int, step: Callable[[], Mapping[str, Any]],
                counter: str = "gradient_steps") -> dict[str, Any]:
        """`step()` n times, each counted; the metrics of the last (with every key seen)."""
        metrics: dict[str, Any] = {}
        for _ in range(n):
            metrics.update(step())
            self.count_update(counter)
        if "critic_loss" in metrics:  # in the state, so a resumed run writes the same rows
            self.state.last_critic_loss = float(metrics["critic_loss"])
        return metrics

    def collecting(self, n: int) -> None:
        """The progress display during online collection (`Collector.on_episode`)."""
        self.progress.activity = f"collecting: {n} transitions"
        self.progress.update()

    def check(self, metrics: Mapping[str, Any], where: str) -> None:
        """Non-finite values stop the run; the first |Q| past the bound marks it diverged
        and it goes on (`divergence_check`)."""
        reason = divergence_check(metrics, self.hp.divergence_q_bound, where)
        if reason is not None and self.state.status != "diverged":
            self.state.status, self.state.diverged_reason = "diverged", reason
            self.ctx.log.info("diverged (continuing while finite): %s", reason)

    # ------------------------------------------------------------------ schedules
    def chunked_pretrain(self, do_updates: Callable[[int], Metrics]) -> None:
        """`pretrain_iters` x `pretrain_updates` in chunks of `checkpoint_every_updates`, a
        checkpoint per chunk and an evaluation per iteration (the trajectory loops)."""
        hp, st = self.seq_hp, self.state
        while st.pretrain_iter < hp.pretrain_iters:
            while st.pretrain_units < hp.pretrain_updates:
                n = min(hp.checkpoint_every_updates, hp.pretrain_updates - st.pretrain_units)
                m = do_updates(n)
                st.pretrain_units += n
                self.check(m, f"pretraining update {st.gradient_steps}")
                self.save_checkpoint()
            self.evaluate("pretrain", st.pretrain_iter)
            st.pretrain_iter += 1
            st.pretrain_units = 0
            self.save_checkpoint()

    def end_online_iteration(self, it: int, metrics: Metrics) -> None:
        """After online iteration `it`'s updates: divergence check, evaluation on schedule or
        at the end of the budget, then a checkpoint."""
        hp, st = self.seq_hp, self.state
        self.check(metrics, f"online iteration {it}")
        st.online_iter = it + 1
        self.progress.update(st.online_transitions)
        last = st.online_transitions >= hp.online_budget or it + 1 >= hp.max_online_iters
        if (it + 1) % hp.eval_interval == 0 or last:
            self.evaluate("online", it + 1)
        if last:
            st.phase = "done"
        self.save_checkpoint()

    # ------------------------------------------------------------------ evaluation
    def elapsed(self) -> float:
        """The run's wall time so far, earlier processes' included."""
        return self.state.wall_time_s + time.perf_counter() - self._t0

    def evaluate(self, phase: str, iteration: int) -> dict[str, Any]:
        st = self.state
        self.progress.evaluating()
        res = self.evaluator.episodes(self.agent)
        scores = self.ctx.task.score(res.returns, res.successes)
        success = float(res.successes.mean()) if res.successes is not None else ""
        row: dict[str, Any] = {
            "phase": phase, "iteration": iteration, "online_transitions": st.online_transitions,
            "gradient_steps": st.gradient_steps, "wall_time_s": round(self.elapsed(), 3),
            "return_mean": float(res.returns.mean()), "return_std": float(res.returns.std()),
            "score_mean": float(scores.mean()), "score_std": float(scores.std()),
            "length_mean": float(res.lengths.mean()), "success_rate": success}
        if not np.isfinite(row["return_mean"]):
            raise Diverged(f"non-finite evaluation return at {phase} iteration {iteration}")
        self.recorder.curve_row(st, row)
        self._diagnostics_row(row, res.trajectories)
        self.ctx.log.info("eval %s it=%d transitions=%d score=%.2f return=%.2f", phase,
                          iteration, row["online_transitions"], row["score_mean"],
                          row["return_mean"])
        self.progress.score(row["score_mean"])
        st.eval_s = self.progress.eval_s  # checkpointed: a resumed run's ETA knows it
        return row

    def _diagnostics_row(self, row: dict[str, Any], eval_trajs: list) -> None:
        """One diagnostics.csv row for the evaluation `row` (odtbench/runfiles/diagnostics.py)."""
        t0 = time.perf_counter()
        st, agent = self.state, self.agent
        d: dict[str, Any] = {k: row[k] for k in ("phase", "iteration", "online_transitions",
                                                  "gradient_steps")}
        if isinstance(agent, CriticProbe) and agent.uses_critic:
            qs = [agent.q_values(self.norm(t.observations), t.actions).cpu().numpy()
                  for t in eval_trajs]
            d.update(critic_vs_returns(qs, [t.rewards for t in eval_trajs], self.ctx.cfg.typed_as(DTHyperparameters).gamma))
        d.update(OnlineEpisodeStats.row(st.online_stats))
        st.online_stats = OnlineEpisodeStats.empty()
        if self.loop is not None:
            d.update(self.loop.diagnostics_extras())
        d["critic_loss"] = st.last_critic_loss
        d["diag_wall_s"] = round(time.perf_counter() - t0, 4)
        self.recorder.diagnostics_row(st, d)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        self.state.wall_time_s = self.elapsed()
        self.restart_clock()
        extras = self.loop.checkpoint_extras() if self.loop else {}
        self.checkpointer.save(self.state, self.agent, extras)

    def load_checkpoint(self) -> bool:
        loaded = self.checkpointer.load(type(self.state), self.agent)
        if loaded is None:
            return False
        self.state, payload = loaded
        if self.loop is not None:
            self.loop.restore_extras(payload)
        self.ctx.log.info("resumed from checkpoint: %s", self.state.counters())
        return True

    def where(self, units: ProgressUnits) -> str:
        """Where the run stands, for the resume and interrupt lines: its phase and the units
        done of that phase's total."""
        st = self.state
        if st.phase == "pretrain":
            return f"pretraining, {units.phase_done()}/{units.pretrain_total()} updates"
        if st.phase == "done":
            return f"online, done ({st.online_transitions} transitions): writing its summary"
        name = "online" if st.phase == "online" else st.phase.replace("_", " ")
        return (f"{name}, {st.online_transitions}/{int(self.hp.online_budget)} transitions, "
                f"{st.gradient_steps} gradient steps")

    def say_resumed(self, units: ProgressUnits, desc: str | None = None) -> None:
        """One line on the terminal: the run goes on from its checkpoint, and where."""
        what = desc or f"{self.ctx.cfg.method} on {self.ctx.cfg.task_key} seed {self.ctx.cfg.seed}"
        print(f"odtbench: resuming {what} from its checkpoint at {self.where(units)}",
              file=sys.stderr, flush=True)

    def record_interrupt(self, exc: BaseException) -> None:
        """log.txt's last word on a run stopped by Ctrl-C / SIGTERM: where it stopped (it
        resumes from its last checkpoint)."""
        how = ("SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
               if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)
        units = self.loop.units if self.loop is not None else None
        at = f" at {self.where(units)}" if units is not None else ""
        self.ctx.log.info("%s (%s)%s", INTERRUPTED_PREFIX, how, at)

    # ------------------------------------------------------------------ driver
    def execute(self, loop: Loop) -> dict[str, Any]:
        """Run `loop` under the run-directory lock, after the directory check (odtbench.runfiles.rundir:
        resume, or start from nothing after a forced re-run or a code change)."""
        from odtbench.runfiles.rundir import ensure_prepared
        from odtbench.runfiles.runlock import run_lock

        self.loop = loop
        with run_lock(self.ctx.out), sigterm_interrupts():
            ensure_prepared(self.ctx.out)
            try:
                return self._execute(loop)
            except (KeyboardInterrupt, SystemExit) as exc:
                self.record_interrupt(exc)
                raise

    def _execute(self, loop: Loop) -> dict[str, Any]:
        self.restart_clock()
        done = self.recorder.finished()
        if done is not None:
            return done
        if self.load_checkpoint():
            self.say_resumed(loop.units)
        else:
            self.recorder.start(self.state, self.speed_options, self.speed)
        cfg = self.ctx.cfg
        self.progress = Progress(f"{cfg.method} {cfg.task_key} s{cfg.seed}", self.ctx.log)
        if self.state.curve:  # resumed: the last evaluation before the restart
            self.progress.last_score = float(self.state.curve[-1]["score_mean"])
        self.progress.eval_s, self.progress.evals_ahead = self.state.eval_s, loop.units.evals_ahead
        try:
            if self.state.phase == "pretrain":
                self.progress.phase("pretraining", loop.units.pretrain_total(),
                                    loop.units.phase_done())
                loop.pretrain()
            if self.state.phase != "done":
                self.progress.phase("online", int(self.hp.online_budget),
                                    self.state.online_transitions, unit="transitions")
                loop.online()
            self.conclude(None)
        except Diverged as exc:
            self.conclude(exc)
        finally:
            self.progress.close()
            self.recorder.close()
        loop.finish()
        return self.recorder.finish(self.state)

    def conclude(self, exc: Diverged | None) -> None:
        """The run's end: `exc` (the run stopped: diverged, its first |Q| reason kept) or
        complete (unless a |Q| blow-up marked it diverged); its wall time up to now."""
        st = self.state
        if exc is not None:
            first = st.diverged_reason if st.status == "diverged" else None
            st.status = "diverged"
            st.diverged_reason = f"{first}; stopped: {exc}" if first else str(exc)
            self.ctx.log.info("diverged: %s", exc)
        elif st.status != "diverged":
            st.status = "complete"
        st.wall_time_s = self.elapsed()
        self.restart_clock()

    def restart_clock(self) -> None:
        """Time this process's work from now (wall_time_s adds only what processes ran)."""
        self._t0 = time.perf_counter()


class IterationUnits:
    """Progress units of the trajectory loops (DT family, PDT): pretraining counts updates
    (the first phase, so all gradient steps); online, transitions, which count once an
    iteration's updates are done (`end_online_iteration`), so the rate is not ahead of the work."""

    def __init__(self, core: RunCore):
        self.core = core

    def pretrain_total(self) -> int:
        hp = self.core.seq_hp
        return int(hp.pretrain_iters) * int(hp.pretrain_updates)

    def phase_done(self) -> int:
        st = self.core.state
        return st.gradient_steps if st.phase == "pretrain" else st.online_transitions

    def live_done(self) -> int | None:
        st = self.core.state
        return st.gradient_steps if st.phase == "pretrain" else None

    def evals_ahead(self, k: int) -> int:
        """Evaluations in the next k units (pretraining: one per iteration left; online:
        every `eval_interval`-th iteration and the last)."""
        hp, st = self.core.seq_hp, self.core.state
        if st.phase == "pretrain":
            return int(hp.pretrain_iters) - st.pretrain_iter
        it, every = st.online_iter, int(hp.eval_interval)
        if k <= 0:
            return 0
        return sum(j % every == 0 for j in range(it + 1, it + k + 1)) + ((it + k) % every != 0)
