"""Every example command in the repository runs as written.

Collected from README.md, docs/, benchmarks/ and examples/ READMEs (shell blocks and inline
code) and from the comments of workflows/config.yaml, the profiles and the Snakefile.
`snakemake` commands are dry-run (`-n`) in a copy of the workflow, `odtbench` commands are
parsed by the CLI's parser with their names checked against the registries, `python
benchmarks|examples/...` scripts get `--help` after their arguments (argparse checks every
argument before it). Usage synopses (`[--out DIR]`, `...`, `{task}`, `FILE`) are not examples.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from odtbench import cli

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
TOOLS = ("snakemake", "odtbench", "python")
MARKDOWN = ["README.md", "docs/*.md", "benchmarks/README.md", "examples/*/README.md"]
COMMENTED = ["workflows/config.yaml", "workflows/profiles/*/config.yaml", "Snakefile"]
_PLACEHOLDER = re.compile(r"\.\.\.|\[|\{|<|key=value|(?:^|\s|=)[A-Z_]{3,}(?:\s|$)")


def _commands(text: str) -> list[str]:
    """Simple commands in one shell line: split at && and ;, env assignments dropped."""
    out = []
    for part in re.split(r"&&|;", text):
        words = part.strip().split()
        while words and re.match(r"^[A-Z_]+=\S*$", words[0]):
            words.pop(0)
        cmd = " ".join(words)
        if words and words[0] in TOOLS and not _PLACEHOLDER.search(cmd):
            out.append(cmd)
    return out


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line)


def collect() -> list[tuple[str, str]]:
    """(where, command) for every example command in the repository."""
    found: list[tuple[str, str]] = []
    for pattern in MARKDOWN:
        for path in sorted(REPO.glob(pattern)):
            where = str(path.relative_to(REPO))
            text = path.read_text()
            # fenced blocks: each line (with its backslash continuations)
            for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, flags=re.S):
                for line in block.replace("\\\n", " ").splitlines():
                    found += [(where, c) for c in _commands(_strip_comment(line))]
            # inline code outside fenced blocks, possibly across one line break
            prose = re.sub(r"```.*?```", "", text, flags=re.S)
            # (a span naming a command, `odtbench run`, is no example: one has an option
            # or is a listing)
            for span in re.findall(r"`([^`]+)`", prose):
                found += [(where, c) for c in _commands(" ".join(span.split()))
                          if " -" in c or c.startswith("odtbench list")]
    for pattern in COMMENTED:
        for path in sorted(REPO.glob(pattern)):
            for line in path.read_text().splitlines():
                m = re.match(r"^#\s{2,}((?:snakemake|odtbench|python) .*)$", line)
                if m:
                    found += [(str(path.relative_to(REPO)), c) for c in _commands(_strip_comment(m[1]))]
    return list(dict.fromkeys(found))


EXAMPLES = collect()


def test_examples_are_found():
    tools = {cmd.split()[0] for _, cmd in EXAMPLES}
    assert tools == set(TOOLS)
    assert any(w == "workflows/config.yaml" for w, _ in EXAMPLES)


@pytest.mark.parametrize("where, command", [e for e in EXAMPLES if e[1].startswith("odtbench ")])
def test_odtbench_examples_parse(where, command, capsys):
    from odtbench.hyperparameters.resolve import SCALES, resolve
    from odtbench.methods import get_method
    from odtbench.tasks import get_task, list_suites
    from odtbench.workflow.plan import split_variant

    argv = shlex.split(command)[1:]
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `{command}` does not parse: {capsys.readouterr().err.strip()}")
    if getattr(args, "scale", None):
        assert args.scale in SCALES, f"{where}: {command}"
    if getattr(args, "task", None):
        get_task(args.task)
    if getattr(args, "method", None):
        # a sweep's run (`TD3+ODT@rl_coeff=0.01`, docs/ablations.md): its method, and its keys
        get_method(split_variant(args.method)[0])
        if getattr(args, "task", None) and getattr(args, "scale", None):
            resolve(args.task, args.method, args.scale)
    if getattr(args, "suite", None):
        assert args.suite in list_suites(), f"{where}: {command}"


@pytest.mark.slow  # one python (torch import) per documented command
@pytest.mark.parametrize("where, command", [e for e in EXAMPLES if e[1].startswith("python ")])
def test_script_examples_parse(where, command):
    argv = shlex.split(command)
    script = REPO / argv[1]
    assert script.is_file(), f"{where}: `{command}`: no {argv[1]}"
    for word in argv[2:]:  # files of the repository an example reads must exist
        if re.match(r"^(benchmarks|examples|docs)/\S+\.\w+$", word):
            assert (REPO / word).exists(), f"{where}: `{command}`: no {word}"
    res = subprocess.run([sys.executable, *argv[1:], "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, f"{where}: `{command}`: {res.stderr.strip()[-500:]}"


def _dry_run_args(command: str) -> tuple[str, ...]:
    """The command's arguments as a dry run: -n added, --cores dropped (plans do not depend
    on it), so commands that differ only there are one dry run."""
    words = shlex.split(command)[1:]
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w in ("--cores", "-c", "-j", "--jobs"):
            skip = True
            continue
        if w not in ("-n", "--dry-run"):
            out.append(w)
    return ("-n", *out)


def _plans_local_gpu_runs_without_a_gpu(args: tuple[str, ...]) -> bool:
    """A dry run of local jobs on a CUDA device that this machine lacks (it stops: a dry run
    for the SLURM profile plans them)."""
    import torch

    cuda = any(re.fullmatch(r"device=cuda(:\d+)?", a) for a in args)
    return cuda and not torch.cuda.is_available() and "workflows/profiles/slurm" not in args


@pytest.mark.slow  # a dry-run of every documented workflow command
def test_snakemake_examples_dry_run(tmp_path):
    examples = [e for e in EXAMPLES if e[1].startswith("snakemake ")]
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
        have_slurm = True
    except ImportError:  # pip install -e '.[slurm]'; tests/test_slurm_profile.py skips too
        have_slurm = False
    plans: dict[tuple[str, ...], list[str]] = {}
    for where, command in examples:
        args = _dry_run_args(command)
        if "workflows/profiles/slurm" in args and not have_slurm:
            continue
        plans.setdefault(args, []).append(f"{where}: `{command}`")
    assert plans
    shutil.copy2(REPO / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")

    def dry(args: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess]:
        wd = tmp_path / f"wd{abs(hash(args))}"
        shutil.copytree(tmp_path / "workflows", wd / "workflows")
        shutil.copy2(tmp_path / "Snakefile", wd / "Snakefile")
        return args, subprocess.run([SNAKEMAKE, *args], cwd=wd, capture_output=True, text=True,
                                    timeout=300)

    failures = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        for args, res in pool.map(dry, plans):
            if _plans_local_gpu_runs_without_a_gpu(args):
                # documented for a GPU machine: here the dry run must stop with the one line
                lines = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error")]
                if res.returncode == 2 and len(lines) == 1 and "no usable CUDA GPU" in lines[0]:
                    continue
                failures.append(f"{'; '.join(plans[args])}: no one-line device error")
            elif res.returncode != 0 or "Traceback" in res.stderr:
                last = [ln for ln in res.stderr.splitlines() if ln.strip()][-1:]
                failures.append(f"{'; '.join(plans[args])}: {' '.join(last)}")
    assert not failures, "\n".join(failures)


def test_an_unknown_target_is_one_line(tmp_path):
    shutil.copy2(REPO / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")
    res = subprocess.run([SNAKEMAKE, "-n", "reports/foo.html"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("odtbench: error:")]
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(errors) == 1 and "unknown suite at scale standard 'foo'" in errors[0]
