"""The library's import graph keeps the layers of docs/architecture.md (issue 28): every module
of odtbench and odtbench_baselines is in the doc's layer table, no module imports from a layer
above its own, no import circle exists, and the core never imports a plug-in.

Imports are read with `ast`, so nothing is imported here: every `import x` / `from x import y`,
at the top, inside functions (lazy) or under TYPE_CHECKING, counts (docs/architecture.md says
why)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("odtbench", "odtbench_baselines")
CORE, PLUGINS = "odtbench", ("odtbench_baselines",)
DOC = REPO / "docs" / "architecture.md"
LEAVING = "†"  # a listed module that is being deleted: its absence is accepted


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """{dotted name: file} of every module of `packages` under `root`; a package is its
    __init__.py."""
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def imports(name: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import of a module in `known` by module `name` at `path`.
    `from p import m` with `m` a submodule imports `p.m`; `import a.b.c` imports `a.b.c`;
    a name that is no module resolves to the closest enclosing module."""
    def closest(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            mod = closest(t)
            if mod is not None and mod != name:
                out.append((node.lineno, mod))
    return out


def layer_table(text: str) -> dict[str, tuple[int, str, bool]]:
    """{module: (layer number, layer name, leaving)} from the table under "## Layers"."""
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, tuple[int, str, bool]] = {}
    for line in section.splitlines():
        m = re.match(r"^\| (\d+) ([^|]+?) \|[^|]*\| (.+) \|$", line)
        if not m:
            continue
        for entry in m.group(3).split(","):
            mod = re.fullmatch(r"\s*`([\w.]+)`\s*(†?)\s*", entry)
            assert mod, f"docs/architecture.md, layer {m.group(1)}: cannot read {entry.strip()!r}"
            assert mod.group(1) not in table, f"{mod.group(1)} is listed twice"
            table[mod.group(1)] = (int(m.group(1)), m.group(2).strip(), mod.group(2) == LEAVING)
    return table


def violations(root: Path, table: dict[str, tuple[int, str, bool]]) -> list[str]:
    """Everything wrong with the import graph under `root` against `table`, one line each."""
    mods = modules(root)
    problems = [f"{m} ({f.relative_to(root)}) is in no layer of docs/architecture.md's table: "
                "add it to the lowest layer its imports allow" for m, f in mods.items() if m not in table]
    problems += [f"{m} is listed in docs/architecture.md but does not exist: remove its entry"
                 for m, (_, _, leaving) in table.items() if m not in mods and not leaving]
    graph: dict[str, set[str]] = {}
    for m, f in mods.items():
        graph[m] = set()
        for line, target in imports(m, f, set(mods)):
            graph[m].add(target)
            where = f"{f.relative_to(root)}:{line} imports {target}"
            if m.split(".")[0] == CORE and target.split(".")[0] in PLUGINS:
                problems.append(f"{where}: the core imports a plug-in (use a registry or entry point)")
            if m in table and target in table and table[target][0] > table[m][0]:
                problems.append(f"{where} (layer {table[target][0]} {table[target][1]}) from layer "
                                f"{table[m][0]} {table[m][1]}: an upward import")
    problems += [f"import circle: {' -> '.join(c)}" for c in circles(graph)]
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for group in groups:  # walk inside the group from its first module back to it
        start = min(group)
        path, seen, v = [start], {start}, start
        while True:
            nxt = sorted(w for w in graph[v] if w in group)
            w = start if start in nxt else next(x for x in nxt if x not in seen)
            path.append(w)
            if w == start:
                break
            seen.add(w)
            v = w
        out.append(path)
    return out


def test_the_library_keeps_the_layers_of_architecture_md():
    problems = violations(REPO, layer_table(DOC.read_text()))
    assert not problems, "\n".join(problems)



def folder_table(text: str) -> set[str]:
    """The top-level entries of odtbench/ named in docs/architecture.md's "## Folders" table."""
    section = text.split("\n## Folders\n", 1)[1].split("\n## ", 1)[0]
    first_table = re.search(r"(?:^\|.*\n)+", section, re.M)
    assert first_table, "docs/architecture.md: no table under ## Folders"
    return {name.rstrip("/") for row in re.findall(r"^\| (`[^|]+) \|", first_table.group(0), re.M)
            for name in re.findall(r"`([\w.]+/?)`", row)}


def test_the_top_level_of_odtbench_is_the_folder_table_of_architecture_md():
    here = {p.name for p in (REPO / CORE).iterdir()
            if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py")}
    listed = folder_table(DOC.read_text())
    assert not here - listed, f"not in docs/architecture.md's folder table: {sorted(here - listed)}"
    assert not listed - here, f"listed in docs/architecture.md but absent: {sorted(listed - here)}"


# ------------------------------------------------------------------ the checker itself


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


TABLE = """# x

## Layers

| layer | what | modules |
|---|---|---|
| 1 low | a | `odtbench`, `odtbench.a`, `odtbench.gone` † |
| 2 high | b | `odtbench.b`, `odtbench.c`, `odtbench_baselines` |

## Next
"""


def test_the_table_is_read_with_its_layers_and_leaving_marks():
    t = layer_table(TABLE)
    assert t["odtbench.a"] == (1, "low", False) and t["odtbench.gone"] == (1, "low", True)
    assert t["odtbench_baselines"][0] == 2
    with pytest.raises(AssertionError, match="listed twice"):
        layer_table(TABLE.replace("`odtbench.c`", "`odtbench.b`"))


def test_a_clean_graph_passes_and_a_leaving_module_may_be_absent(tmp_path):
    _package(tmp_path, {"odtbench/__init__.py": "", "odtbench/a.py": "import os\n",
                        "odtbench/b.py": "from odtbench import a\nfrom . import c\n",
                        "odtbench/c.py": "def f():\n    from odtbench.a import x\n",
                        "odtbench_baselines/__init__.py": "from odtbench.b import y\n"})
    assert violations(tmp_path, layer_table(TABLE)) == []


@pytest.mark.parametrize(("files", "expect"), [
    ({"odtbench/a.py": "def f():\n    import odtbench.b\n"}, "odtbench/a.py:2 imports odtbench.b "
     "(layer 2 high) from layer 1 low: an upward import"),
    ({"odtbench/b.py": "from .c import g\n", "odtbench/c.py": "def f():\n    from odtbench import b\n"},
     "import circle: odtbench.b -> odtbench.c -> odtbench.b"),
    ({"odtbench/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import odtbench_baselines\n"},
     "the core imports a plug-in"),
    ({"odtbench/new.py": ""}, "odtbench.new (odtbench/new.py) is in no layer"),
    ({"odtbench/c.py": None}, "odtbench.c is listed in docs/architecture.md but does not exist"),
])
def test_each_kind_of_violation_is_named(tmp_path, files, expect):
    base = {"odtbench/__init__.py": "", "odtbench/a.py": "", "odtbench/b.py": "",
            "odtbench/c.py": "", "odtbench_baselines/__init__.py": ""}
    base.update(files)
    _package(tmp_path, {k: v for k, v in base.items() if v is not None})
    problems = violations(tmp_path, layer_table(TABLE))
    assert any(expect in p for p in problems), problems
