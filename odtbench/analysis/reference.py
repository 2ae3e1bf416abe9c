"""The study's published numbers (odtbench/reference/paper_results.csv) and what it takes for
our results to be comparable with them."""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources

import pandas as pd

from odtbench.analysis.common import paper_domain, strip_version
from odtbench.errors import OdtbenchError

QUALITIES = ("medium-replay", "medium-expert", "umaze-diverse", "medium-diverse",
             "medium-play", "large-diverse", "large-play", "medium", "random", "expert",
             "cloned", "human", "umaze", "open", "large", "bandit")
PAPER_SEEDS = 5
# Online budget of the study's tables (paper Sec. 4 "Metrics").
PAPER_BUDGET = {"mujoco": 500_000, "mujoco_delayed": 500_000, "adroit": 1_000_000,
                "antmaze": 1_000_000, "maze2d": 1_000_000}
PAPER_TABLE = {"mujoco": "Table 1", "adroit": "Table 2", "antmaze": "Table 3",
               "mujoco_delayed": "Table 10", "maze2d": "Table 11"}


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    with resources.files("odtbench").joinpath("reference/paper_results.csv").open() as fh:
        return pd.read_csv(fh)


def load_paper_results(domain: str | None = None) -> pd.DataFrame:
    """Published cells: domain, dataset, method, final, increase, before (a copy)."""
    df = _load()
    return (df if domain is None else df[df["domain"] == domain]).reset_index(drop=True).copy()


def paper_dataset_for(suite: str, dataset: str) -> str | None:
    """Name of our dataset in the study's tables (same name up to the -vN suffix), or None."""
    df = load_paper_results(paper_domain(suite))
    want = strip_version(dataset)
    hits = sorted({d for d in df["dataset"] if strip_version(d) == want})
    return hits[0] if hits else None


STANDIN_PREFIX = "generated:standin/"
# The study's toy (paper App. F.2.1), where this suite's toy preset differs (docs/toy.md).
TOY_STUDY = {"actor": "a 2 × 128 MLP actor", "expl_noise": "U(−0.01, 0.01)", "batch_size": 32}


def _shared(hyperparameters: list[dict], key: str) -> object:
    vals = {repr(h.get(key)) for h in hyperparameters}
    return hyperparameters[0].get(key) if len(vals) == 1 and hyperparameters else None


def _toy_notes(hyperparameters: list[dict]) -> list[str]:
    """What differs from the study's toy, from the runs' own hyperparameters."""
    notes = []
    embed, layers = _shared(hyperparameters, "embed_dim"), _shared(hyperparameters, "n_layer")
    if embed is not None:
        notes.append(f"The actor is this suite's Decision Transformer (embed {embed}, {layers} "
                     f"layer{'s' if layers != 1 else ''}, the agent of the other suites); the "
                     f"study's toy used {TOY_STUDY['actor']} (docs/toy.md).")
    noise = _shared(hyperparameters, "expl_noise")
    if noise is not None:
        notes.append(f"Exploration noise N(0, {noise:g}²) clipped to [−1, 1]; the study's "
                     f"{TOY_STUDY['expl_noise']}.")
    batch = _shared(hyperparameters, "batch_size")
    if batch is not None and batch != TOY_STUDY["batch_size"]:
        notes.append(f"Batch {batch}; the study's {TOY_STUDY['batch_size']} (twice the gradient "
                     "steps per online epoch).")
    notes.append("The study shows Figure 2 only, no table: compare the panels' shape (ODT stays "
                 "off the peak, the RL-gradient methods reach it), not numbers.")
    return notes


def budget_note(hyperparameters: list[dict] | None) -> str:
    """" (configured online_budget N, a floor: ...)" for the runs' hyperparameters, else ""."""
    budgets = sorted({int(h["online_budget"]) for h in hyperparameters or []
                      if isinstance(h.get("online_budget"), (int, float))})
    if not budgets:
        return ""
    return (f" (configured online_budget {' / '.join(f'{b:,}' for b in budgets)}: a floor, "
            "since a DT-family run ends with the online iteration that reaches it and that "
            "iteration finishes its episodes)")


def comparability_notes(scores: pd.DataFrame, hyperparameters: list[dict] | None = None,
                        recipes: dict[str, dict] | None = None) -> list[str]:
    """Reasons why these runs must not be read as a reproduction of the study's numbers
    (empty list: same scale, D4RL-equivalent data, full budget, 5 seeds). `hyperparameters`:
    the runs' resolved hyperparameters (the toy's differences); `recipes`: {dataset: the
    recipe record of its build} (how a stand-in was made)."""
    if scores.empty:
        return []
    notes = []
    suite = str(scores["suite"].iloc[0])
    domain = paper_domain(suite)
    scales = sorted(set(scores["scale"].dropna()))
    if scales != ["paper"]:
        notes.append(f"Scale {', '.join(scales)} (reduced networks/budgets), not the study's "
                     "'paper' scale.")
    if domain == "toy":
        return notes + _toy_notes(hyperparameters or [])
    if domain not in PAPER_TABLE:
        return notes + [f"The study publishes no table for the '{suite}' suite."]
    all_sources = scores[["dataset", "dataset_source"]].dropna().drop_duplicates()
    standin = all_sources[all_sources["dataset_source"].str.startswith(STANDIN_PREFIX)]
    if len(standin):
        how = []
        for d in standin["dataset"]:
            policy = ((recipes or {}).get(d) or {}).get("policy")
            how.append(f"{d}: {policy}" if policy else d)
        notes.append("STAND-IN datasets (" + "; ".join(how) + "): rollouts of random or scripted "
                     "actions in the real environment, in place of the study's D4RL data, which "
                     "cannot be downloaded here. They prove the pipeline runs; the scores say "
                     "nothing about how the methods compare (docs/suites.md).")
    sources = sorted({s for s in all_sources["dataset_source"]
                      if not s.startswith(("minari:", STANDIN_PREFIX))})
    if sources:
        notes.append("Datasets generated by this suite (" + ", ".join(sources) + "), not the "
                     "D4RL datasets the study used.")
    envs = sorted(set(scores.get("env_id", pd.Series(dtype=str)).dropna()))
    if envs:
        theirs = sorted(set(scores.get("paper_dataset", pd.Series(dtype=str)).dropna()))
        notes.append(f"Environments {', '.join(envs)} (Gymnasium and the installed MuJoCo); the "
                     "study ran D4RL's own environment versions (mujoco-py)"
                     + (f" behind its datasets {', '.join(theirs)}." if theirs else "."))
    done = scores[scores["status"].isin(["complete", "diverged"])]
    budget = PAPER_BUDGET[domain]
    if len(done) and done["online_transitions"].max() < budget:
        notes.append(f"Runs ended after up to {int(done['online_transitions'].max()):,} online "
                     f"transitions{budget_note(hyperparameters)}; the study used {budget:,}.")
    seeds = done.groupby(["dataset", "method"])["seed"].nunique()
    if len(seeds) and seeds.min() < PAPER_SEEDS:
        lo, hi = int(seeds.min()), int(seeds.max())
        count = f"{lo}" if lo == hi else f"{lo}–{hi}"
        notes.append(f"{count} seed{'s' if hi != 1 else ''} per cell; the study used {PAPER_SEEDS}.")
    if (scores["status"] != "complete").any():
        n = int((scores["status"] != "complete").sum())
        notes.append(f"{n} run(s) missing, incomplete or diverged (see the runs table).")
    return notes


@cache
def task_info(suite: str, dataset: str) -> dict:
    """domain, quality, env_id and paper_dataset of a task, from the task registry when it
    knows the task, otherwise parsed from the dataset name (so reports of external suites work)."""
    info: dict[str, str | None] = {"domain": None, "quality": None, "env_id": None,
                                   "paper_dataset": None}
    try:
        from odtbench.tasks import get_task

        t = get_task(f"{suite}/{dataset}")
        info.update(domain=t.domain, quality=t.quality, env_id=t.env_id,
                    paper_dataset=t.paper_dataset)
    except (ImportError, OdtbenchError, AttributeError):
        pass
    base = strip_version(dataset)
    if info["quality"] is None:
        info["quality"] = next((q for q in QUALITIES if base == q or base.endswith("-" + q)), None)
    if info["domain"] is None:
        q = info["quality"]
        info["domain"] = base[: -len(q) - 1] if q and base.endswith("-" + q) else base.split("-")[0]
    if info["paper_dataset"] is None:
        info["paper_dataset"] = paper_dataset_for(suite, dataset)
    return info
