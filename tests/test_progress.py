"""The live progress display (odtbench/runfiles/progress.py): rate and ETA over this process's work,
plain lines off a terminal, the log lines `odtbench status` reads."""

from __future__ import annotations

import io
import logging

from odtbench.runfiles.progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    buf = io.StringIO()
    log = logging.getLogger(f"test.progress.{name}")
    log.handlers[:] = [logging.StreamHandler(buf)]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, buf


def test_rate_and_eta_after_resume_count_only_this_process() -> None:
    clock, out = Clock(), io.StringIO()
    p = Progress("run", stream=out, enabled=True, tty=False, clock=clock)
    # resumed at 30 000 of 40 000 transitions: those are not this process's work
    p.phase("online", 40_000, done=30_000, unit="transitions")
    assert p.rate() is None and p.eta() is None
    clock.t += 50.0
    p.update(31_000)  # one iteration: 1000 transitions in 50 s
    assert abs(p.rate() - 20.0) < 1e-9
    assert abs(p.eta() - 9 * 50.0) < 1e-9
    # between chunks the ETA runs down with the clock instead of the rate dropping
    clock.t += 10.0
    p.update()
    assert abs(p.eta() - (450.0 - 10.0)) < 1e-9
    # 1500 left in chunks of ~1000: two more iterations, not one and a half
    clock.t += 40.0
    p.update(32_000)
    for step in [1000] * 6 + [500]:
        clock.t += 50.0
        p.update(p.done + step)
    assert p.done == 38_500
    assert abs(p.eta() - 2 * 50.0) < 1e-9


def test_eta_of_units_done_one_at_a_time() -> None:
    clock = Clock()
    p = Progress("run", stream=io.StringIO(), enabled=False, clock=clock)
    p.phase("pretraining", 500)
    for i in range(1, 101):
        clock.t += 0.5
        p.update(i)
    assert abs(p.eta() - 400 * 0.5) < 1e-6


def test_plain_lines_when_not_a_terminal_and_log_lines() -> None:
    clock, out = Clock(), io.StringIO()
    log, buf = _logger("plain")
    p = Progress("TD3+ODT x s0", log, stream=out, enabled=True, tty=False, line_s=5.0,
                 log_s=30.0, clock=clock)
    p.phase("pretraining", 500)
    n_lines = out.getvalue().count("\n")
    for i in range(1, 101):  # 100 updates within 1 s: no new line
        clock.t += 0.01
        p.update(i)
    assert out.getvalue().count("\n") == n_lines
    clock.t += 5.0
    p.update(101)
    assert out.getvalue().count("\n") == n_lines + 1
    assert "progress pretraining 101/500 updates" in out.getvalue().splitlines()[-1]
    p.score(1.25)
    assert buf.getvalue().splitlines()[-1].endswith("score=1.25")
    assert "\r" not in out.getvalue()


def test_disabled_display_still_logs() -> None:
    clock, out = Clock(), io.StringIO()
    log, buf = _logger("off")
    p = Progress("r", log, stream=out, enabled=False, tty=False, clock=clock)
    p.phase("online", 10, unit="transitions")
    clock.t += 1.0
    p.update(5)
    p.close()
    assert out.getvalue() == ""
    assert "progress online 5/10 transitions" in buf.getvalue()


def test_format_duration() -> None:
    assert format_duration(None) == "?"
    assert format_duration(65) == "1:05"
    assert format_duration(3723) == "1:02:03"


def test_eta_counts_the_evaluations_ahead() -> None:
    clock = Clock()
    p = Progress("run", stream=io.StringIO(), enabled=False, clock=clock)
    p.eval_s = 20.0  # as a resumed run gets it from its checkpoint
    p.evals_ahead = lambda k: k  # one evaluation per iteration
    p.phase("online", 5000, done=3000, unit="transitions")
    clock.t += 60.0
    p.update(4000)  # one iteration: 60 s
    assert abs(p.eta() - (60.0 + 20.0)) < 1e-9
    # a 30 s evaluation: kept out of the rate, no longer ahead, its own duration learnt
    p.evals_ahead = lambda k: 0
    p.evaluating()
    clock.t += 30.0
    p.score(1.0)
    assert p.eval_s == 30.0 and abs(p.rate() - 1000 / 60) < 1e-9
    assert abs(p.eta() - 60.0) < 1e-9


def test_the_dt_loop_counts_its_evaluations_ahead() -> None:
    import types

    from odtbench.runcore.core import IterationUnits
    from odtbench.runcore.state import RunState

    hp = types.SimpleNamespace(pretrain_iters=2, eval_interval=5)  # the run's typed keys
    core = types.SimpleNamespace(seq_hp=hp, state=RunState(phase="online", online_iter=3,
                                                       pretrain_iter=2))
    units = IterationUnits(core)
    # iterations 4..9: the 5th is evaluated, and the last (9th) at the end of the budget
    assert units.evals_ahead(6) == 2
    assert units.evals_ahead(7) == 2  # the 5th and the 10th, also the last
    assert units.evals_ahead(0) == 0
    core.state.phase, core.state.pretrain_iter = "pretrain", 1
    assert units.evals_ahead(100) == 1


def test_the_rate_follows_a_change_of_load() -> None:
    """Iterations that take 50 s for 10 minutes, then 25 s (the machine got quieter): the
    rate and ETA are those of the last `window_s` (300 s), not of the whole phase."""
    clock = Clock()
    p = Progress("run", enabled=False, clock=clock, window_s=300.0)
    p.phase("online", 40_000, unit="transitions")
    for dt in [50.0] * 12 + [25.0] * 14:
        clock.t += dt
        p.update(p.done + 1000)
    assert abs(p.rate() - 1000 / 25.0) < 1e-9
    assert abs(p.eta() - 14 * 25.0) < 1e-9  # 14 iterations left at 25 s each


def test_the_rate_window_keeps_few_marks_however_fast_the_units_come() -> None:
    clock = Clock()
    p = Progress("run", enabled=False, clock=clock, window_s=300.0)
    p.phase("pretraining", 200_000)
    for i in range(1, 200_001):  # 1000 updates a second for 200 s
        clock.t += 0.001
        p.update(i)
    assert len(p._marks) <= 102 and abs(p.rate() - 1000.0) < 1.0
