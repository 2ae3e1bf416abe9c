"""The run-result files (docs/contracts.md): config.json, curve.csv, diagnostics.csv and,
written last, summary.json. Every write goes through the one atomic writer. Each curve and
diagnostics row, once in its file, also goes to the optional live logger (odtbench.runfiles.livelog:
TensorBoard, W&B), so the files stay the source of truth."""

from __future__ import annotations

import json
from typing import Any

from odtbench.runcore.context import RunContext
from odtbench.runcore.state import RunState
from odtbench.runfiles.livelog import LiveLogger
from odtbench.runfiles.results import atomic_write_json, provenance, write_curve, write_diagnostics


class Recorder:
    """Writes one run's files from its context and state."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.summary_path = ctx.out / "summary.json"
        cfg = ctx.cfg
        self.live = LiveLogger.from_env(ctx.out, ctx.log, {
            "suite": cfg.suite, "dataset": cfg.dataset, "method": cfg.method_dir,
            "seed": cfg.seed, "scale": cfg.scale, "hyperparameters": cfg.hyperparameters})

    def finished(self) -> dict[str, Any] | None:
        """The summary of a run that already ended, else None."""
        if self.summary_path.exists():
            return json.loads(self.summary_path.read_text())
        return None

    def start(self, state: RunState, speed_options: list[str], speed: str = "reference") -> None:
        """config.json, and a valid (header-only) curve from the start: a run that diverges
        before its first evaluation still has the three contract files."""
        config = self.config_json(speed_options, speed)
        atomic_write_json(self.ctx.out / "config.json", config)
        write_curve(self.ctx.out / "curve.csv", state.curve)
        self.live.meta["started_at"] = config["provenance"]["started_at"]
        self.live.open(fresh=True)

    def curve_row(self, state: RunState, row: dict[str, Any]) -> None:
        state.curve.append(row)
        write_curve(self.ctx.out / "curve.csv", state.curve)
        self.live.curve_row(row)

    def diagnostics_row(self, state: RunState, row: dict[str, Any]) -> None:
        state.diagnostics.append(row)
        write_diagnostics(self.ctx.out / "diagnostics.csv", state.diagnostics)
        self.live.diagnostics_row(row)

    def close(self) -> None:
        """The live logger's end (its last events flushed); the run files need none."""
        self.live.close()

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.ctx.out / name, obj)

    def config_json(self, speed_options: list[str], speed: str = "reference") -> dict[str, Any]:
        ctx = self.ctx
        cfg, t = ctx.cfg, ctx.task
        prov = provenance()
        prov["device"] = ctx.device
        # how it ran, like the device: provenance, which no staleness check compares
        prov["speed"] = speed  # the update path: "reference" (eager) or "fast" (compiled)
        prov["speed_options"] = speed_options  # [] = fp32, unfused
        # how the run was watched, not what it computed: like the device, never a reason to
        # re-run (odtbench.runfiles.livelog)
        prov["logger"] = self.live.name
        return {"schema": "odtbench.config/1", "suite": cfg.suite, "dataset": cfg.dataset,
                "method": cfg.method, "seed": cfg.seed, "scale": cfg.scale,
                "hyperparameters": cfg.hyperparameters, "hyperparameter_sources": cfg.sources,
                "dataset_info": ctx.dataset_info,
                "reference": {"min": t.ref_min, "max": t.ref_max, "source": t.ref_source,
                              "score_kind": t.score_kind},
                "provenance": prov}

    def finish(self, state: RunState) -> dict[str, Any]:
        """summary.json, written last: its presence means the run is finished."""
        summary = self.summary(state)
        atomic_write_json(self.summary_path, summary)
        return summary

    def summary(self, state: RunState) -> dict[str, Any]:
        cfg, t = self.ctx.cfg, self.ctx.task
        pre = [r["score_mean"] for r in state.curve if r["phase"] == "pretrain"]
        onl = [r["score_mean"] for r in state.curve if r["phase"] == "online"]
        before = pre[-1] if pre else None
        return {"schema": "odtbench.summary/1", "suite": cfg.suite, "dataset": cfg.dataset,
                "method": cfg.method, "seed": cfg.seed, "scale": cfg.scale,
                "status": state.status, "diverged_reason": state.diverged_reason,
                "before_score": before,
                "final_score": onl[-1] if onl else before,
                "best_score": max(onl) if onl else before,
                "online_transitions": state.online_transitions,
                "gradient_steps": state.gradient_steps,
                "wall_time_s": round(state.wall_time_s, 3),
                "score_kind": t.score_kind,
                "reference": {"min": t.ref_min, "max": t.ref_max, "source": t.ref_source},
                "dataset_info": {k: self.ctx.dataset_info.get(k)
                                 for k in ("id", "source", "checksum")}}
