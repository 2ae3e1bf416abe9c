"""Optional live logging of a run to TensorBoard or Weights & Biases (off by default).

The run's own files stay the source of truth: the one `Recorder` that writes curve.csv and
diagnostics.csv hands each row, as written, to the live logger too, so a dashboard shows
exactly the numbers the files hold. What it writes (docs/contracts.md, "Live logging"):

- `tensorboard`: event files in `<run dir>/tensorboard/` (`tensorboard --logdir results/runs`);
- `wandb`: a Weights & Biases run (project `$WANDB_PROJECT`, default "odtbench"), its local
  files in `<run dir>/wandb/`; `wandb-offline` only writes them (`wandb sync` uploads later).

Tags: a curve row's numbers as `<phase>/<column>` (pretrain rows at step = gradient steps,
online rows at step = online transitions, the curve's x-axis), a diagnostics row's as
`diagnostics/<column>` at step = gradient steps.

The choice travels in $ODTBENCH_LOGGER (`odtbench run --logger` sets it; the workflow sets it
from `logger:` in workflows/config.yaml, not as a job param, so choosing a logger never re-runs
a finished run). It is checked before any compute: a logger whose package is not installed
stops the run with one line saying how to install it. A logger that fails while the run goes
on is dropped with one warning in log.txt; the run and its files are unaffected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from odtbench.errors import OdtbenchError, UnknownChoiceError

LOGGER_ENV = "ODTBENCH_LOGGER"
LOGGERS = ("none", "tensorboard", "wandb", "wandb-offline")
# logger -> (the package it imports, the odtbench extra that installs it)
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
             "wandb-offline": ("wandb", "wandb")}
TB_DIR = "tensorboard"
# columns that say where a row is, not what was measured
_KEYS = ("phase", "iteration", "online_transitions", "gradient_steps")


def check_logger(name: str | None = None) -> str:
    """The logger to use (`name`, else $ODTBENCH_LOGGER, else "none"), checked: an unknown
    name or a missing package is an OdtbenchError naming the fix. Call it before any compute."""
    name = name or os.environ.get(LOGGER_ENV) or "none"
    if name not in LOGGERS:
        raise UnknownChoiceError("logger", name, LOGGERS)
    if name in _PACKAGES:
        package, extra = _PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise OdtbenchError(f"logger {name!r} needs the {package} package, which is not "
                                f"installed: pip install 'odtbench[{extra}]' (or run with "
                                "--logger none / `logger: none`)")
    return name


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """A row's finite numbers (blank success rates and flags left out)."""
    out = {}
    for k, v in row.items():
        if k in _KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[k] = float(v)
    return out


class _Sink:
    """Where rows go: one subclass per logger."""

    def curve(self, row: dict[str, Any]) -> None: ...
    def diagnostics(self, row: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class _TensorBoard(_Sink):
    def __init__(self, out: Path, fresh: bool):
        from torch.utils.tensorboard import SummaryWriter

        d = out / TB_DIR
        if fresh and d.is_dir():  # a run started from nothing: its old events would mix in
            shutil.rmtree(d)
        # flushed every 10 s, so a dashboard follows the run
        self.writer = SummaryWriter(log_dir=str(d), flush_secs=10)

    def curve(self, row: dict[str, Any]) -> None:
        phase = str(row.get("phase", "curve"))
        step = int(row["online_transitions"] if phase == "online" else row["gradient_steps"])
        for k, v in _numbers(row).items():
            self.writer.add_scalar(f"{phase}/{k}", v, step)
        self.writer.flush()

    def diagnostics(self, row: dict[str, Any]) -> None:
        step = int(row["gradient_steps"])
        for k, v in _numbers(row).items():
            self.writer.add_scalar(f"diagnostics/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb(_Sink):
    def __init__(self, out: Path, meta: dict[str, Any], offline: bool):
        import wandb

        # one W&B run per run directory and start: a resumed run continues it
        key = f"{out.resolve()}|{meta.get('started_at')}".encode()
        name = f"{meta['suite']}/{meta['dataset']}/{meta['method']}/seed{meta['seed']}"
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "odtbench"), dir=str(out),
            id=hashlib.sha256(key).hexdigest()[:16], resume="allow", name=name,
            group=f"{meta['scale']}/{meta['suite']}/{meta['dataset']}/{meta['method']}",
            config=meta, mode="offline" if offline else None)
        self.run.define_metric("gradient_steps")
        self.run.define_metric("online_transitions")
        self.run.define_metric("pretrain/*", step_metric="gradient_steps")
        self.run.define_metric("diagnostics/*", step_metric="gradient_steps")
        self.run.define_metric("online/*", step_metric="online_transitions")

    def _log(self, prefix: str, row: dict[str, Any]) -> None:
        data: dict[str, Any] = {f"{prefix}/{k}": v for k, v in _numbers(row).items()}
        data.update({k: row[k] for k in ("gradient_steps", "online_transitions") if k in row})
        self.run.log(data)

    def curve(self, row: dict[str, Any]) -> None:
        self._log(str(row.get("phase", "curve")), row)

    def diagnostics(self, row: dict[str, Any]) -> None:
        self._log("diagnostics", row)

    def close(self) -> None:
        self.run.finish()


class LiveLogger:
    """The live logger of one run, fed by its Recorder; never raises."""

    def __init__(self, name: str, out: Path, log: logging.Logger,
                 meta: dict[str, Any] | None = None):
        self.name, self.out, self.log = name, Path(out), log
        self.meta = meta or {}
        self._sink: _Sink | None = None
        self._dead = name == "none"

    @classmethod
    def from_env(cls, out: Path, log: logging.Logger,
                 meta: dict[str, Any] | None = None) -> LiveLogger:
        """The logger $ODTBENCH_LOGGER names (the CLI checked it before the run began)."""
        name = os.environ.get(LOGGER_ENV) or "none"
        return cls(name if name in LOGGERS else "none", out, log, meta)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.log.warning("live logger %s failed %s (%s: %s); the run goes on without it, its "
                         "files are complete", self.name, what, type(exc).__name__, exc)
        self._dead, self._sink = True, None

    def open(self, fresh: bool) -> None:
        """Start logging (fresh: the run starts from nothing, so old events are dropped)."""
        if self._dead or self._sink is not None:
            return
        if "started_at" not in self.meta:  # resumed: the start config.json recorded
            try:
                prov = json.loads((self.out / "config.json").read_text())["provenance"]
                self.meta["started_at"] = prov["started_at"]
            except (OSError, ValueError, KeyError, TypeError):
                self.meta["started_at"] = None
        try:
            if self.name == "tensorboard":
                self._sink = _TensorBoard(self.out, fresh)
            else:
                self._sink = _Wandb(self.out, self.meta, offline=self.name == "wandb-offline")
        except Exception as exc:  # a logger never stops a run
            self._fail("to start", exc)

    def curve_row(self, row: dict[str, Any]) -> None:
        self._feed("curve", row)

    def diagnostics_row(self, row: dict[str, Any]) -> None:
        self._feed("diagnostics", row)

    def _feed(self, kind: str, row: dict[str, Any]) -> None:
        if self._dead:
            return
        self.open(fresh=False)
        if self._sink is None:
            return
        try:
            getattr(self._sink, kind)(row)
        except Exception as exc:
            self._fail(f"on a {kind} row", exc)

    def close(self) -> None:
        if self._sink is None:
            return
        sink, self._sink = self._sink, None
        try:
            sink.close()
        except Exception as exc:
            self._fail("to close", exc)




def export_logger(name: str) -> None:
    """Hand the workflow's logger choice to every job it starts, through the environment (the
    Snakefile calls this: no job param, so a choice never re-runs a finished run)."""
    os.environ[LOGGER_ENV] = name


__all__ = ["LiveLogger", "check_logger", "export_logger", "LOGGER_ENV", "LOGGERS", "TB_DIR"]
