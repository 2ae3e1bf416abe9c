"""Every count of planned runs and jobs that the README, docs/*.md and the example configs
state is what `snakemake -n` plans.

`STATED` lists each statement once: the file, its text with placeholders for the counts, and
the dry-run it describes. The test runs each distinct dry-run once, in a temporary copy of
the workflow (no results there, so everything is planned), fills the placeholders from it and
asserts the file says exactly that. A new or changed statement is one line here; a change
that moves a count (a method, a dataset, a scale) fails until the text says the new one.

Placeholders: {runs} (run directories planned: one per dataset, method and seed, packed or
not), {jobs} (all jobs), {datasets} (dataset jobs), {methods} and {seeds} (distinct method
directories and seeds among the runs). A statement about a measurement made once (a wall
time, "27 runs were trained") is history, not a plan, and is not listed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))

MUJOCO = "reports/mujoco.html"
MUJOCO_QUICK = "reports/mujoco.html --config scale=quick"
MUJOCO_PAPER = "reports/mujoco.html --config scale=paper"
MORE_MUJOCO = "reports/mujoco.html --configfile workflows/examples/more-mujoco.yaml"

# (file, statement with placeholders, dry-run arguments after `snakemake -n`)
STATED = [
    ("README.md", "The standard MuJoCo suite is {runs} runs ({datasets} datasets × {methods} "
     "methods × {seeds} seeds", MUJOCO),
    ("README.md", "standard: {datasets} datasets, {methods} methods x {seeds} seeds = {runs} runs",
     MUJOCO),
    ("README.md", "quick: hopper-random, {methods} methods x {seeds} seeds = {runs} runs",
     MUJOCO_QUICK),
    ("docs/scales.md", "the study's 7 methods and the floor, {seeds} seeds ({runs}\nruns)", MUJOCO),
    ("README.md", "# {datasets} datasets, {runs} runs", MORE_MUJOCO),
    ("README.md", "plans {datasets} datasets x {methods} methods x {seeds} seeds = {runs} runs",
     MUJOCO_PAPER),
    ("workflows/examples/more-mujoco.yaml",
     "{datasets} datasets x {methods} methods x {seeds} seeds = {runs} runs", MORE_MUJOCO),
    ("docs/cluster.md", "{datasets} MuJoCo datasets × {methods} methods × {seeds} seeds",
     MUJOCO_PAPER),
    ("docs/cluster.md", "{datasets} × {methods} × {seeds} = {runs} runs, {datasets} dataset jobs",
     MUJOCO_PAPER),
    ("docs/cluster.md", "as {jobs_plus_test} `sbatch` jobs (the test job, {datasets} dataset, "
     "{runs} runs", "reports/toy.html --config scale=smoke"),
    ("docs/ablations.md", "at one seed ({runs} runs on {datasets} datasets)",
     "reports/ablations.html --config scale=smoke"),
    ("docs/ablations.md", "seeds: {runs} runs, {jobs} jobs (`snakemake -n reports/ablations.html "
     "--config scale=quick`: {datasets}\ndatasets, {runs} runs",
     "reports/ablations.html --config scale=quick"),
    ("docs/workflow.md", "scale=paper` plans {runs} runs ({jobs} jobs;",
     "reports/ablations.html --config scale=paper"),
]


def _copy_workflow(dest: Path) -> None:
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    shutil.copytree(REPO / "workflows", dest / "workflows")


def _plan(args: str, tmp_root: str) -> dict[str, int]:
    """The counts of `snakemake -n <args>` in a fresh copy of the workflow."""
    wd = Path(tmp_root) / re.sub(r"\W+", "_", args)
    wd.mkdir()
    _copy_workflow(wd)
    res = subprocess.run([SNAKEMAKE, "-n", *args.split()], cwd=wd, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    jobs = {r[0]: int(r[1]) for r in rows if len(r) == 2}
    outputs = {o for line in re.findall(r"^\s*output: (.*)$", out, flags=re.MULTILINE)
               for o in line.split(", ")}
    runs = sorted(o for o in outputs if re.fullmatch(r"results/runs/\S+/summary\.json", o))
    parts = [r.split("/") for r in runs]  # results/runs/<scale>/<suite>/<dataset>/<method>/seed<k>
    return {"runs": len(runs), "jobs": jobs["total"], "jobs_plus_test": jobs["total"] + 1,
            "datasets": jobs.get("dataset", 0), "methods": len({p[5] for p in parts}),
            "seeds": len({p[6] for p in parts})}


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, dict[str, int]]:
    """Every distinct dry-run of STATED, run side by side (each is mostly start-up)."""
    root = str(tmp_path_factory.mktemp("plans"))
    distinct = sorted({args for _, _, args in STATED})
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(distinct, pool.map(lambda a: _plan(a, root), distinct), strict=True))


@pytest.mark.parametrize("path,statement,args", STATED,
                         ids=[f"{p}:{s[:30]}" for p, s, _ in STATED])
def test_stated_count_is_what_the_dry_run_plans(path, statement, args, plans):
    counts = plans[args]
    expected = statement.format(**counts)
    text = (REPO / path).read_text()
    # a statement may wrap: compare with runs of whitespace collapsed
    flat = " ".join(text.split())
    if " ".join(expected.split()) not in flat:
        pytest.fail(f"{path} should say {expected!r}: `snakemake -n {args}` plans {counts}")


def test_every_product_of_counts_multiplies_out():
    """"A datasets x M methods x S seeds = R runs" anywhere in the docs: A·M·S = R."""
    pattern = re.compile(r"(\d+)(?: \w+)? [x×] (\d+)(?: \w+)? [x×] (\d+)(?: \w+)? = ([\d,]+) runs")
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "workflows/examples").glob("*.yaml"))]
    found = 0
    for f in files:
        for a, b, c, total in pattern.findall(" ".join(f.read_text().split())):
            found += 1
            assert int(a) * int(b) * int(c) == int(total.replace(",", "")), f"{f.name}: {a}x{b}x{c}"
    assert found >= 3
