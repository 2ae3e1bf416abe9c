"""Live progress of one run: phase, units done of total, rate, ETA and the last score.

A run calls `Progress.phase` when it enters a phase (pretraining: updates; online:
transitions), `Progress.update` with the units done so far (from the run state, so a resumed
run starts where it left off; the DT loops count an online iteration's transitions when its
updates are done), `Progress.score` after an evaluation. `update` costs one clock
read unless the display is due, so the loops call it after every update.

Where it shows:
- on a terminal (stderr is a TTY): a tqdm bar, redrawn every `refresh_s` (2) s;
- otherwise (Snakemake job logs, pipes): one plain line on stderr every `line_s` (10) s;
- always: the same plain line in the run's log.txt every `log_s` (30) s and at each phase
  change, which `odtbench status` reads (docs/workflow.md, "Watching a workflow").
`ODTBENCH_PROGRESS=0` turns the stderr display off (tests); the log.txt lines stay.

The rate, and so the ETA, count only what this process did in the current phase: after a
resume the units done before the restart are neither work nor time of this process. They
are measured over the last `window_s` (300) s of that work, so on a machine whose load
changes the ETA follows the current speed (why a window, measured: docs/workflow.md,
"Watching a workflow").
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

PROGRESS_ENV = "ODTBENCH_PROGRESS"
# "progress <phase> <done>/<total> <unit> rate=<r>/s eta=<s>s score=<x>": parsed by
# odtbench.workflow.status; keep the two in step.
LINE_PREFIX = "progress"


def format_duration(seconds: float | None) -> str:
    """`1:02:03` / `4:05` for a duration, `?` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The progress display of one run (see the module docstring)."""

    def __init__(self, desc: str, log: logging.Logger | None = None, *,
                 stream: IO[str] | None = None, enabled: bool | None = None,
                 tty: bool | None = None, refresh_s: float = 2.0, line_s: float = 10.0,
                 log_s: float = 30.0, window_s: float = 300.0, clock: Any = time.monotonic):
        self.desc, self.log, self.clock = desc, log, clock
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get(PROGRESS_ENV, "1") != "0"
        self.enabled = enabled
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self.refresh_s, self.line_s, self.log_s = refresh_s, line_s, log_s
        self.window_s = window_s
        self.name, self.unit, self.total, self.done = "", "", 0, 0
        self.last_score: float | None = None
        # gradient steps so far, shown beside the phase's units: an online iteration's
        # transitions count once its updates are done, the steps show it working meanwhile
        self.steps: int | None = None
        self.activity = ""  # what the run does between units ("collecting 340 transitions")
        # Evaluations: their duration (last measured, also before a resume: the run keeps it
        # in its checkpoint) and how many are still ahead given the chunks of units left.
        self.eval_s: float | None = None
        self.evals_ahead: Callable[[int], int] | None = None
        self._eval_t0: float | None = None
        self._eval_total = self._eval_at_done = 0.0
        self._marks: deque[tuple[float, int, float, int]] = deque([(0.0, 0, 0.0, 0)])
        self._start_t = self._t_done = 0.0
        self._bar: Any = None
        self._next = 0.0  # the earliest clock time anything is due
        self._next_line = self._next_log = 0.0

    # -------------------------------------------------------------- the run's hooks
    def phase(self, name: str, total: int, done: int = 0, unit: str = "updates") -> None:
        """Enter phase `name` with `done` of `total` units already done (before a resume)."""
        if self.name and self.name != name:
            self.emit(force=True)  # the end of the previous phase, in the log
        self.name, self.unit, self.total = name, unit, max(int(total), 0)
        self.done = int(done)
        self._start_t = self._t_done = self.clock()
        # (clock, done, evaluation seconds, changes) at changes >= window_s / 100 apart: the
        # rate's window, at most ~100 marks however fast the units come
        self._marks = deque([(self._start_t, self.done, 0.0, 0)])
        self._chunks = 0  # how many times `done` moved: units may come in chunks
        self._eval_total = self._eval_at_done = 0.0  # evaluation seconds within this phase
        if self.enabled and self.tty:
            self._open_bar()
        self.emit(force=True)

    def update(self, done: int | None = None) -> None:
        """The units done so far in the current phase (None: unchanged, the clock moved
        on); redraws only when due."""
        now = self.clock()
        if done is not None and done != self.done:
            self.done, self._t_done = done, now
            self._chunks += 1
            self._eval_at_done = self._eval_total
            if now - self._marks[-1][0] >= self.window_s / 100:
                self._marks.append((now, self.done, self._eval_total, self._chunks))
            # keep what the window needs (and one mark before it), not the whole history
            while len(self._marks) > 2 and self._marks[1][0] <= now - self.window_s:
                self._marks.popleft()
        if now >= self._next:
            self.emit()

    def evaluating(self) -> None:
        """An evaluation starts (its time is kept apart from the units' time)."""
        self._eval_t0 = self.clock()

    def score(self, value: float) -> None:
        """The score of the latest evaluation (shown until the next one)."""
        if self._eval_t0 is not None:
            self.eval_s = self.clock() - self._eval_t0
            self._eval_total += self.eval_s
            self._eval_t0 = None
        self.last_score = float(value)
        self.emit(force=True)

    def close(self) -> None:
        if self.name:
            self.emit(force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -------------------------------------------------------------- numbers
    def _window(self) -> tuple[int, float, int]:
        """(units, seconds without evaluations, changes) from the last mark at least
        `window_s` before the latest change (or the phase's start) to the latest change."""
        start = self._marks[0]
        for mark in self._marks:
            if mark[0] > self._t_done - self.window_s:
                break
            start = mark
        t0, done0, eval0, chunks0 = start
        return (self.done - done0, self._t_done - t0 - (self._eval_at_done - eval0),
                self._chunks - chunks0)

    def rate(self) -> float | None:
        """Units per second over this process's recent work in this phase (`_window`: the
        last `window_s` seconds of it), evaluations left out (None before any). Measured to
        the last change, not to now, so units that arrive in chunks (an online iteration's
        transitions) are not under-counted; a window, so the ETA follows a machine whose
        load changes."""
        n, dt, _ = self._window()
        return n / dt if n > 0 and dt > 0 else None

    def eta(self) -> float | None:
        """Seconds left in this phase (None while unknown): the units left at the rate, plus
        the evaluations still ahead at the last one's duration. Units that come in chunks (an
        online iteration's >= 1000 transitions) are left as whole chunks of the mean size in
        the rate's window: the last iteration overshoots the budget, and it takes a whole iteration's time
        however few transitions it has to add."""
        r = self.rate()
        if not r or not self._chunks:
            return None
        left = max(self.total - self.done, 0)
        n, _, k = self._window()
        chunk = n / k
        n_chunks = math.ceil(left / chunk - 1e-9) if chunk > 1 else left
        units_s = n_chunks * chunk / r
        evals = self.evals_ahead(n_chunks) if self.evals_ahead and self.eval_s else 0
        since = self.clock() - self._t_done - (self._eval_total - self._eval_at_done)
        return max(units_s + evals * (self.eval_s or 0.0) - since, 0.0)

    def line(self) -> str:
        """The plain progress line (also what log.txt holds)."""
        r, eta = self.rate(), self.eta()
        score = "?" if self.last_score is None else f"{self.last_score:.2f}"
        return (f"{LINE_PREFIX} {self.name} {self.done}/{self.total} {self.unit} "
                f"rate={'?' if r is None else f'{r:.3g}'}/s "
                f"eta={'?' if eta is None else f'{eta:.0f}'}s score={score}"
                + ("" if self.steps is None else f" steps={self.steps}"))

    # -------------------------------------------------------------- display
    def _open_bar(self) -> None:
        from tqdm import tqdm

        if self._bar is not None:
            self._bar.close()
        # tqdm's own rate would count the units done before a resume as this process's
        # work; ours goes in the postfix and tqdm's is hidden by the format.
        self._bar = tqdm(total=self.total, initial=self.done, unit=self.unit[:2] or "it",
                         desc=f"{self.desc} {self.name}", file=self.stream, leave=False,
                         dynamic_ncols=True, mininterval=0,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}")

    def emit(self, force: bool = False) -> None:
        now = self.clock()
        if self._bar is not None:
            r = self.rate()
            self._bar.n = min(self.done, self.total)
            self._bar.set_postfix_str(
                f"{'?' if r is None else f'{r:.3g}'} {self.unit}/s, eta {format_duration(self.eta())}, "
                f"score {'?' if self.last_score is None else f'{self.last_score:.2f}'}"
                + ("" if self.steps is None else f", {self.steps} grad steps")
                + (f", {self.activity}" if self.activity else ""),
                refresh=False)
            self._bar.refresh()
        elif self.enabled and (force or now >= self._next_line):
            print(f"{self.desc}: {self.line()} ({format_duration(self.eta())} left)",
                  file=self.stream, flush=True)
            self._next_line = now + self.line_s
        if self.log is not None and (force or now >= self._next_log):
            self.log.info("%s", self.line())
            self._next_log = now + self.log_s
        due = [self._next_log] if self.log is not None else []
        if self._bar is not None:
            due.append(now + self.refresh_s)
        elif self.enabled:
            due.append(self._next_line)
        self._next = min(due) if due else float("inf")


__all__ = ["Progress", "format_duration", "PROGRESS_ENV", "LINE_PREFIX"]
