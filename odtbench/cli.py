"""The `odtbench` command: run | config | dataset | list | aggregate | figures | report | status.

Every subcommand imports its heavy modules (torch, the analysis) lazily, so `--help` and
`list` stay fast. User errors (`OdtbenchError`, bad arguments) print ONE line,
`odtbench: error: ...`, and exit with status 2; names are validated before any output
directory is created, so a bad command never leaves result files behind.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from odtbench.errors import OdtbenchError, Terminated, UnknownChoiceError
from odtbench.hyperparameters.schemas import DEFAULT_SCALE, SCALES

if TYPE_CHECKING:
    from odtbench.hyperparameters.resolve import RunConfig

RUNS_ROOT = Path("results/runs")
PAPER_REPS = 10_000  # the study's stratified-bootstrap repetitions
LIST_KINDS = ("methods", "tasks", "suites", "scales")
SCALE_CHOICES = " | ".join(SCALES)
SCALE_HELP = {
    "smoke": "seconds per run, tiny nets: proves the wiring (CI)",
    "quick": "one CPU machine in minutes per run: small nets, short budgets (a first look)",
    "standard": "the default: quick's sizes, the budgets that show the study's MuJoCo effect, "
                "10 evaluation episodes",
    "paper": "the study's hyperparameters and budgets exactly",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump), like every other odtbench error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"odtbench: error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are >= 0")
    return value


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise UnknownChoiceError("scale", scale, SCALES)
    return scale


def _check_suite(suite: str) -> str:
    from odtbench.tasks import list_suites

    if suite not in list_suites():
        raise UnknownChoiceError("suite", suite, list_suites())
    return suite


def default_run_dir(task_key: str, method: str, scale: str, seed: int) -> Path:
    """`results/runs/<scale>/<suite>/<dataset>/<method>/seed<N>` (docs/workflow.md: why the
    scale is in the path)."""
    from odtbench.runfiles.results import run_dir

    suite, dataset = task_key.split("/", 1)
    return run_dir(RUNS_ROOT / scale, suite, dataset, method, seed)


# ----------------------------------------------------------------------------- run

def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def set_threads(n: int) -> None:
    """Torch intra-op threads of this process. One by default, by hand as under Snakemake:
    small updates gain little from more threads and lose much when the cores are shared
    (docs/performance.md)."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only settable before the first parallel work; intra-op is what counts
        pass


def cmd_run(args: argparse.Namespace) -> int:
    from odtbench.hyperparameters.checks import check_device
    from odtbench.hyperparameters.overrides import parse_overrides
    from odtbench.hyperparameters.resolve import resolve
    from odtbench.methods import get_method

    # resolve() validates scale, task, method and every override (key and value): nothing is
    # written before all of them are known to be good.
    cfg = resolve(args.task, args.method, _check_scale(args.scale), args.seed,
                  parse_overrides(args.set))
    _choose_logger(args.logger)
    set_threads(args.threads)
    runner = get_method(cfg.method).load_runner()
    kwargs: dict[str, Any] = {}
    if "device" in inspect.signature(runner).parameters:
        kwargs["device"] = check_device(args.device)
    elif args.device != "cpu":
        raise OdtbenchError(f"method {cfg.method!r} runs on the CPU only; drop --device {args.device}")
    if "speed" in inspect.signature(runner).parameters:
        from dataclasses import replace

        from odtbench.fastpath import auto_path
        from odtbench.methods.dt_agent import SPEED_ENV, SpeedOptions

        path = auto_path(args.device, cfg.scale) if args.speed == "auto" else args.speed
        kwargs["speed"] = replace(SpeedOptions.parse(os.environ.get(SPEED_ENV)), path=path)
    elif args.speed == "fast":
        print(f"odtbench: speed {args.speed}: method {cfg.method!r} has no fast path; running "
              "the reference path", file=sys.stderr)
    out = Path(args.out) if args.out else default_run_dir(cfg.task_key, cfg.method_dir, cfg.scale, cfg.seed)
    stale = _stale_reason(out, cfg)
    if stale is None and (out / "summary.json").exists():
        # finished: report it, writing nothing (the directory may be read-only, the summary
        # damaged: validation says which file and how to redo the run)
        from odtbench.runfiles.results import validate_run

        summary = validate_run(out).summary or {}
    else:
        from odtbench.runfiles.rundir import prepare
        from odtbench.runfiles.runlock import run_lock

        # own the directory before changing anything in it: a second run with the same
        # --out stops here, naming this one
        with run_lock(out):
            _guard_stale(out, cfg, replace=args.replace_stale)
            prepare(out, replace_stale=args.replace_stale)
            # before the data loading and env building: the run says it is alive before
            # its bar starts
            print(f"odtbench: {cfg.method} on {cfg.task_key} seed {cfg.seed} ({cfg.scale}): "
                  f"loading data, building the agent -> {out}", file=sys.stderr, flush=True)
            summary = runner(cfg, out, **kwargs)
    final = summary.get("final_score")
    final_txt = "n/a" if final is None else f"{final:.2f}"
    print(f"{cfg.method} on {cfg.task_key} seed {cfg.seed} ({cfg.scale}): {summary.get('status')}, "
          f"final score {final_txt} -> {out}")
    return 0


def _choose_logger(name: str | None) -> None:
    """The run's live logger (--logger, else $ODTBENCH_LOGGER, else none), checked before any
    compute: a missing package stops here with the pip command. The run's Recorder reads it
    from the environment (odtbench.runfiles.livelog)."""
    import os

    from odtbench.runfiles.livelog import LOGGER_ENV, check_logger

    os.environ[LOGGER_ENV] = check_logger(name)


def cmd_config(args: argparse.Namespace) -> int:
    """Print a run's resolved hyperparameters, each with its source (no run, no files)."""
    from odtbench.hyperparameters.overrides import parse_overrides
    from odtbench.hyperparameters.resolve import resolve

    cfg = resolve(args.task, args.method, _check_scale(args.scale), 0, parse_overrides(args.set))
    if args.json:
        print(json.dumps({"hyperparameters": cfg.hyperparameters,
                          "hyperparameter_sources": cfg.sources}, indent=1, default=str))
        return 0
    width = max(len(k) for k in cfg.hyperparameters)
    print(f"# {cfg.method} on {cfg.task_key} ({cfg.scale}): {len(cfg.hyperparameters)} keys")
    for k, v in cfg.hyperparameters.items():
        print(f"{k:<{width}}  {json.dumps(v, default=str):<12}  {cfg.sources[k]}")
    return 0


def _stale_reason(out: Path, cfg: RunConfig) -> str | None:
    """Why the run recorded in `out` is not the run `cfg` describes (None if it is, or if
    there is none). Runners resume from a run directory's checkpoint or return its finished
    summary, so a directory left by other hyperparameters must never be resumed."""
    path = out / "config.json"
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return f"{path} is unreadable"
    if not isinstance(old, dict):
        return f"{path} is not a run's config"
    for key, want in (("suite", cfg.suite), ("dataset", cfg.dataset), ("method", cfg.method),
                      ("seed", cfg.seed), ("scale", cfg.scale)):
        if old.get(key) != want:
            return f"{key} {old.get(key)!r} (now {want!r})"
    # compare as JSON: that is how config.json stores them (tuples become lists, ...)
    new = json.loads(json.dumps(cfg.hyperparameters, default=str))
    have = old.get("hyperparameters") or {}
    changed = sorted(k for k in set(new) | set(have) if new.get(k) != have.get(k))
    if changed:
        k = changed[0]
        return f"hyperparameter {k} {have.get(k)!r} (now {new.get(k)!r})" + (
            f" and {len(changed) - 1} more" if len(changed) > 1 else "")
    dataset = old.get("dataset_info")  # the dataset's id/source/checksum record
    recorded = dataset.get("checksum") if isinstance(dataset, dict) else None
    if recorded:  # only when resuming: a rebuilt dataset makes the old run stale too
        from odtbench.data.build import load_task_dataset

        try:
            _, info = load_task_dataset(cfg.task_key, cfg.scale)
        except OdtbenchError:
            return None  # missing dataset: the runner says how to build it
        if info.get("checksum") != recorded:
            return f"dataset checksum {recorded} (now {info.get('checksum')})"
    return None


def _guard_stale(out: Path, cfg: RunConfig, *, replace: bool) -> None:
    reason = _stale_reason(out, cfg)
    if reason is None:
        return
    if not replace:
        hint = (f", or name the values in the method ({cfg.method}@key=value) for a run "
                "directory of their own") if reason.startswith("hyperparameter") else ""
        raise OdtbenchError(f"run directory {out} holds another run: {reason}; pass "
                            f"--replace-stale to discard it, or choose another --out{hint}")
    print(f"odtbench: discarding stale run in {out}: {reason}", file=sys.stderr)
    from odtbench.runfiles.runlock import LOCK_NAME

    for entry in out.iterdir():  # everything but the lock this process holds
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ----------------------------------------------------------------------------- dataset

def cmd_dataset_build(args: argparse.Namespace) -> int:
    from odtbench.data.build import build_dataset
    from odtbench.runfiles.results import atomic_write_json

    info = build_dataset(args.task, _check_scale(args.scale), force=args.force)
    if args.stats:
        # the whole build info: stats plus id, source and checksum, so this file changes
        # (and the workflow re-runs what used it) whenever the data change
        atomic_write_json(args.stats, info)
    print(json.dumps(info["stats"], indent=2, sort_keys=True))
    return 0


def cmd_dataset_stats(args: argparse.Namespace) -> int:
    from odtbench.data.build import load_task_dataset

    _, info = load_task_dataset(args.task, _check_scale(args.scale))
    print(json.dumps({k: info.get(k) for k in ("id", "source", "checksum", "stats")},
                     indent=2, sort_keys=True))
    return 0


# ----------------------------------------------------------------------------- list

def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines with every column but the last padded to its widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)] if rows else []
    return ["  ".join([c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)] + [r[-1]]).rstrip() for r in rows]


def _list_lines(kind: str) -> list[str]:
    if kind == "methods":
        from odtbench.methods import get_method, list_methods

        specs = [get_method(name) for name in list_methods()]
        # role: study (compared in its tables), ablation (reports/ablations.html), floor
        return _columns([(s.name, s.family, s.role or "-", s.description) for s in specs])
    if kind == "tasks":
        from odtbench.tasks import list_tasks

        return _columns([(t.key, t.env_id, t.source) for t in list_tasks()])
    if kind == "suites":
        from odtbench.tasks import list_suites, list_tasks

        counts = {s: len(list_tasks(s)) for s in list_suites()}
        return _columns([(s, f"{n} dataset{'' if n == 1 else 's'}") for s, n in counts.items()])
    return _columns([(s, SCALE_HELP.get(s, "")) for s in SCALES])


def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(LIST_KINDS)
    for kind in kinds:
        if len(kinds) > 1:
            print(f"{kind}:")
        for line in _list_lines(kind):
            print(f"  {line}" if len(kinds) > 1 else line)
    return 0


# ----------------------------------------------------------------------------- analysis

def _runs_root(args: argparse.Namespace) -> Path:
    return Path(args.runs) if args.runs else RUNS_ROOT / _check_scale(args.scale)


def cmd_aggregate(args: argparse.Namespace) -> int:
    suite = _check_suite(args.suite)  # before the (slow) analysis import
    from odtbench.analysis.suite import DEFAULT_REPS, aggregate_suite

    # the study's 10 000 bootstrap repetitions at paper scale, fewer otherwise (issue 5)
    reps = args.reps or (PAPER_REPS if args.scale == "paper" else DEFAULT_REPS)
    out = aggregate_suite(suite, _runs_root(args), args.out or Path("results") / suite,
                          reps=reps, allow_mixed=args.allow_mixed)
    print(out)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    suite = _check_suite(args.suite)
    from odtbench.analysis.suite import load_aggregates, write_figures

    results = Path(args.results) if args.results else Path("results") / suite
    aggregates = load_aggregates(results / "aggregates.json")
    if aggregates is None:
        raise OdtbenchError(f"{results / 'aggregates.json'} is missing or outdated; run "
                            f"`odtbench aggregate --suite {suite}` first")
    for path in write_figures(suite, _runs_root(args), args.out or Path("reports") / suite,
                              aggregates):
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    suite = _check_suite(args.suite)
    from odtbench.report import render_report

    scale = _check_scale(args.scale)
    out = render_report(
        suite, _runs_root(args), args.out or Path("reports") / f"{suite}.html",
        aggregates_dir=args.results or Path("results") / suite,
        reps=args.reps or (PAPER_REPS if scale == "paper" else None),
        dataset_stats=args.stats or Path("datasets/stats") / scale / suite,
        benchmarks_root=args.benchmarks or Path("results/benchmarks") / scale,
        figures_dir=args.figures or Path("reports") / suite)
    print(out)
    return 0


# ----------------------------------------------------------------------------- ablations

def cmd_ablations(args: argparse.Namespace) -> int:
    import json

    from odtbench.workflow import plan as wp

    if args.plan:
        try:
            plan = json.loads(args.plan)
        except json.JSONDecodeError as exc:
            raise OdtbenchError(f"--plan is not JSON ({exc.msg}); the workflow passes "
                                "odtbench.workflow.plan.ablation_plan as JSON") from None
    else:
        config = wp.load_config(args.config)
        plan = wp.ablation_plan(config, _check_scale(args.scale or config["scale"]))
    scale = _check_scale(plan["scale"])
    if args.figure:
        wp.names(args.figure, [f["figure"] for f in plan["figures"]], "ablation figure")
        plan = {**plan, "figures": [f for f in plan["figures"] if f["figure"] in args.figure]}
    runs = Path(args.runs) if args.runs else RUNS_ROOT / scale
    if not args.table and not args.out:
        raise OdtbenchError("give --table CSV (the figures' run table) or --out HTML (the "
                            "report), or both")
    if args.table:
        import pandas as pd

        from odtbench.analysis import ablations as ab

        records = ab.load_plan_records(plan, runs)
        seeds = [int(s) for s in plan["seeds"]]
        tables = [ab.figure_table(f, seeds, records, runs) for f in plan["figures"]]
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
            columns=ab.TABLE_COLUMNS)
        print(ab.write_figure_table(table, args.table))
    if args.out:
        from odtbench.report import render_ablations

        print(render_ablations(plan, runs, args.out,
                               dataset_stats=args.stats or Path("datasets/stats") / scale))
    return 0


# ----------------------------------------------------------------------------- status

def cmd_status(args: argparse.Namespace) -> int:
    from odtbench.workflow import plan as wp
    from odtbench.workflow.status import format_status, workflow_status

    config = wp.load_config(args.config)
    scale = _check_scale(args.scale or config["scale"])
    suites = wp.configured_suites(config, scale)
    if args.suite:
        wp.suite_config(config, scale, args.suite)  # one line if it is not configured
        suites = [args.suite]
    print(format_status(workflow_status(config, scale, suites), scale, args.jobs))
    return 0


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="odtbench", description="Offline-to-online RL benchmark for Decision "
                "Transformers (reproduces TD3+ODT, NeurIPS 2024).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="{run,config,dataset,list,aggregate,figures,report,ablations,status}")

    r = sub.add_parser("run", help="train and evaluate one method on one task and seed",
                       description="Resolve the hyperparameters of one run and execute it, "
                       "writing config.json, curve.csv and summary.json (resumes from the "
                       "run directory's checkpoint).")
    r.add_argument("--task", required=True, help="SUITE/DATASET, e.g. toy/bandit (odtbench list tasks)")
    r.add_argument("--method", required=True, help="e.g. TD3+ODT (odtbench list methods), or a sweep's run, e.g. TD3+ODT@rl_coeff=0.01 (docs/ablations.md)")
    r.add_argument("--seed", type=_nonneg_int, required=True,
                   help="seed of the run (>= 0): data order, network init, exploration and "
                   "evaluation episodes; the workflow runs seeds 0..N-1")
    r.add_argument("--scale", required=True, help=SCALE_CHOICES)
    r.add_argument("--out", help="run directory (default results/runs/SCALE/SUITE/DATASET/METHOD/seedN)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter (JSON value, else string); repeatable")
    r.add_argument("--device", default="cpu", help="torch device for methods that support it (default cpu)")
    r.add_argument("--speed", choices=("auto", "reference", "fast"), default="auto",
                   help="update path: reference (eager) or fast (each training unit one "
                   "compiled function; equal to rounding; TD3+ODT, DDPG+ODT, TD3, ODT); auto "
                   "(default): fast where it was measured faster per whole run, compile "
                   "included (the CPU at the standard scale), else reference "
                   "(docs/performance.md)")
    r.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                   help="torch CPU threads (default 1, as every workflow job; more pays only "
                   "on idle cores with a large DT)")
    r.add_argument("--logger", metavar="NAME",
                   help="also log the curve and diagnostics rows live: none (default) | "
                   "tensorboard | wandb | wandb-offline (extras: pip install "
                   "'odtbench[tensorboard]' / 'odtbench[wandb]'); default $ODTBENCH_LOGGER")
    r.add_argument("--replace-stale", action="store_true",
                   help="discard a run directory left by other hyperparameters instead of "
                   "stopping (the workflow passes it: Snakemake "
                   "re-runs a job whose resolved hyperparameters changed)")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("config", aliases=["resolve"],
                       help="print a run's resolved hyperparameters with their sources",
                       description="Resolve the hyperparameters `odtbench run` would use (only "
                       "the method family's own keys) and print each with its source.")
    c.add_argument("--task", required=True, help="SUITE/DATASET, e.g. toy/bandit")
    c.add_argument("--method", required=True, help="e.g. TD3+BC (odtbench list methods)")
    c.add_argument("--scale", required=True, help=SCALE_CHOICES)
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter, as for `odtbench run`; repeatable")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=cmd_config)

    d = sub.add_parser("dataset", help="build or inspect a task's offline dataset",
                       description="Offline datasets in Minari format (built once, then reused).")
    dsub = d.add_subparsers(dest="action", required=True, parser_class=_Parser)
    # `generate` is the name for the same action (D4RL recipes for generated sources)
    db = dsub.add_parser("build", aliases=["generate"],
                         help="build (or find) the dataset of a task at a scale")
    db.add_argument("--task", required=True, help="SUITE/DATASET")
    db.add_argument("--scale", required=True, help=SCALE_CHOICES)
    db.add_argument("--stats", help="also write the dataset statistics as JSON to this path")
    db.add_argument("--force", action="store_true", help="rebuild even if the dataset exists")
    db.set_defaults(func=cmd_dataset_build)
    ds = dsub.add_parser("stats", help="print the statistics of a built dataset")
    ds.add_argument("--task", required=True, help="SUITE/DATASET")
    ds.add_argument("--scale", required=True, help=SCALE_CHOICES)
    ds.set_defaults(func=cmd_dataset_stats)

    ls = sub.add_parser("list", help="list methods, tasks, suites or scales")
    ls.add_argument("kind", nargs="?", choices=LIST_KINDS, help="what to list (default: all)")
    ls.set_defaults(func=cmd_list)

    def suite_parser(name: str, scale_help: str = f"selects results/runs/SCALE (default {DEFAULT_SCALE})",
                     **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand over one suite's run files: --suite, --scale, --runs."""
        q = sub.add_parser(name, **kwargs)
        q.add_argument("--suite", required=True)
        q.add_argument("--scale", default=DEFAULT_SCALE, help=scale_help)
        q.add_argument("--runs", help="runs root holding SUITE/... (default results/runs/SCALE)")
        return q

    a = suite_parser("aggregate", help="scores table and rliable aggregates of a suite",
                     description="Build results/SUITE/scores.csv and aggregates.json from "
                     "run files.")
    a.add_argument("--out", help="output directory (default results/SUITE)")
    a.add_argument("--reps", type=int, help="bootstrap repetitions (default 10000 at paper "
                   "scale, else the analysis default)")
    a.add_argument("--allow-mixed", action="store_true",
                   help="allow runs of several scales or dataset sources in one table")
    a.set_defaults(func=cmd_aggregate)

    f = suite_parser("figures", help="learning-curve and rliable figures of a suite",
                     description="Write the suite's figures (SVG and PNG) from its run files "
                     "and aggregates.json.")
    f.add_argument("--results", help="directory with aggregates.json (default results/SUITE)")
    f.add_argument("--out", help="figure directory (default reports/SUITE)")
    f.set_defaults(func=cmd_figures)

    rp = suite_parser("report", f"selects the SCALE paths below (default {DEFAULT_SCALE})",
                      help="render the HTML report of a suite",
                      description="Render one self-contained HTML file from the suite's run "
                      "files, aggregates, figures, dataset stats and Snakemake benchmarks.")
    rp.add_argument("--results", help="directory with aggregates.json (default results/SUITE)")
    rp.add_argument("--figures", help="figure directory (default reports/SUITE)")
    rp.add_argument("--stats", help="dataset stats (default datasets/stats/SCALE/SUITE)")
    rp.add_argument("--benchmarks", help="Snakemake benchmark root (default results/benchmarks/SCALE)")
    rp.add_argument("--reps", type=int, help="bootstrap repetitions when aggregates are recomputed "
                    "(default 10000 at paper scale)")
    rp.add_argument("--out", help="HTML file (default reports/SUITE.html)")
    rp.set_defaults(func=cmd_report)

    ab = sub.add_parser("ablations", help="the study's ablation figures: run tables and report",
                        description="Expand `ablations:` of the workflow config at a scale (or "
                        "read the expansion from --plan) and write each figure's run table "
                        "(--table) and/or reports/ablations.html (--out) from the run files.")
    ab.add_argument("--scale", help=f"{SCALE_CHOICES} (default: the config's scale)")
    ab.add_argument("--config", default="workflows/config.yaml", help="workflow config (default %(default)s)")
    ab.add_argument("--plan", help="the expanded plan as JSON (the workflow passes it; overrides --config)")
    ab.add_argument("--figure", action="append", help="only this figure (repeatable; default all)")
    ab.add_argument("--runs", help="runs root (default results/runs/SCALE)")
    ab.add_argument("--stats", help="dataset stats root holding SUITE/ (default datasets/stats/SCALE)")
    ab.add_argument("--table", help="CSV: one row per panel, line and seed")
    ab.add_argument("--out", help="HTML report, e.g. reports/ablations.html")
    ab.set_defaults(func=cmd_ablations)

    st = sub.add_parser("status", help="state, progress and ETA of the workflow's planned runs",
                        description="Every run workflows/config.yaml plans at a scale: not "
                        "started / running / complete / interrupted / diverged / failed, its "
                        "progress and last score, its remaining time and where that comes from "
                        "(its own rate, finished runs, the committed timing table, other "
                        "methods, the declared ceiling), and an ETA for the whole workflow. "
                        "Reads the run directories and logs only; run it from the repository "
                        "root, while Snakemake runs or after.")
    st.add_argument("--scale", help=f"{SCALE_CHOICES} (default: the config's scale)")
    st.add_argument("--suite", help="only this suite (default: every suite of the scale)")
    st.add_argument("--jobs", type=_positive_int, metavar="N",
                    help="runs at a time for the ETA (default: as many as are running, at least 1)")
    st.add_argument("--config", default="workflows/config.yaml", help="workflow config (default %(default)s)")
    st.set_defaults(func=cmd_status)
    return p


def _terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `odtbench` console script; returns the exit status."""
    import signal
    import threading

    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()  # signals: only there
    old_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
        return rc
    except OdtbenchError as exc:
        msg = " ".join(str(exc).split())  # one line, whatever the message
        print(f"odtbench: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `odtbench list | head`: the reader left, nothing to report
        # the Python docs' recipe: later writes (the exit flush) go nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # disk full / read-only: one line with the fix; others are bugs
        from odtbench.runfiles.atomic import os_error_message

        os_msg = os_error_message(exc)
        if os_msg is None:
            raise
        print(f"odtbench: error: {' '.join(os_msg.split())}", file=sys.stderr)
        return 2
    except Terminated:
        print("odtbench: terminated (SIGTERM; a run resumes from its last checkpoint with the "
              "same command)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("odtbench: interrupted", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
