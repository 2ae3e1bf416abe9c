"""Paper-style tables: dataset rows x method columns, cells "final (+increase)" or
"before→after", an Average row, the best final per row in bold and anything above 90 % of the
best underlined (the study's captions). Rendered as HTML, Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from odtbench.analysis.common import FLOORS, is_floor, method_label, sort_methods
from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import atomic_write_text

UNDERLINE_FRACTION = 0.9
KINDS = ("final_increase", "before_after")


@dataclass
class Cell:
    text: str
    value: float | None = None  # the number the bold/underline rule looks at (final score)
    style: str = ""  # "" | "bold" | "underline"
    mark: str = ""  # footnote mark, e.g. "†" for a cell with fewer runs than planned


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[str]
    cells: list[list[Cell]]
    footnotes: list[str] = field(default_factory=list)
    row_header: str = "Dataset"

    def styles(self) -> dict[tuple[str, str], str]:
        """{(row, column): style} of the styled cells (what tests look at)."""
        return {(r, c): cell.style for r, row in zip(self.rows, self.cells, strict=True)
                for c, cell in zip(self.columns, row, strict=True) if cell.style}


def best_marks(values: Sequence[float | None], fraction: float = UNDERLINE_FRACTION) -> list[str]:
    """The study's rule for one row: "bold" for the best value (ties all bold), "underline"
    for any other value above `fraction` x best; missing values get ""."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return [""] * len(values)
    best = max(finite)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append("")
        elif v == best:
            out.append("bold")
        elif v > fraction * best:
            out.append("underline")
        else:
            out.append("")
    return out


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _cell_text(kind: str, final: float, increase: float | None, before: float | None) -> str:
    if kind == "final_increase":
        return _fmt(final) if increase is None or pd.isna(increase) else f"{_fmt(final)} ({increase:+.2f})"
    return _fmt(final) if before is None or pd.isna(before) else f"{_fmt(before)} → {_fmt(final)}"


def paper_table(cells: pd.DataFrame, *, kind: str = "final_increase", title: str = "",
                methods: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
                labels: dict[str, str] | None = None, average: bool = True) -> Table:
    """Table from per-cell numbers: columns dataset, method, final, increase [, before, n, n_runs].

    `before` defaults to final - increase. Cells with n < n_runs get a † (fewer runs than
    planned), cells with n_diverged > 0 a ‡ (their diverged runs are in the mean); the
    Average row averages each method over the datasets it has."""
    if kind not in KINDS:
        raise OdtbenchError(f"unknown table kind {kind!r}; valid choices: {', '.join(KINDS)}")
    missing = {"dataset", "method", "final", "increase"} - set(cells.columns)
    if missing:
        raise OdtbenchError(f"table cells lack column(s) {sorted(missing)}; need dataset, method, "
                            "final, increase")
    df = cells.copy()
    if "before" not in df:
        df["before"] = df["final"] - df["increase"]
    methods = sort_methods(df["method"].unique()) if methods is None else list(methods)
    datasets = list(dict.fromkeys(df["dataset"])) if datasets is None else list(datasets)
    labels = labels or {}
    by = {(r.dataset, r.method): r for r in df.itertuples(index=False)}
    rows, grid, dagger, diverged = [], [], False, False
    for d in datasets:
        row = []
        for m in methods:
            r = by.get((d, m))
            if r is None or pd.isna(r.final):
                row.append(Cell("—"))
                continue
            mark = ""
            if hasattr(r, "n_runs") and hasattr(r, "n") and r.n < r.n_runs:
                mark, dagger = "†", True
            if getattr(r, "n_diverged", 0) > 0:  # counted like any run, as the study does
                mark, diverged = mark + "‡", True
            row.append(Cell(_cell_text(kind, r.final, r.increase, r.before), float(r.final), "", mark))
        rows.append(labels.get(d, d))
        grid.append(row)
    if average and datasets:
        avg_row = []
        for m in methods:
            sub = df[(df["method"] == m) & df["dataset"].isin(datasets) & df["final"].notna()]
            if sub.empty:
                avg_row.append(Cell("—"))
                continue
            mark = ""
            if sub["dataset"].nunique() < len(datasets):
                mark = "*"
            inc = sub["increase"].mean() if sub["increase"].notna().all() else None
            bef = sub["before"].mean() if sub["before"].notna().all() else None
            avg_row.append(Cell(_cell_text(kind, sub["final"].mean(), inc, bef),
                                float(sub["final"].mean()), "", mark))
        rows.append("Average")
        grid.append(avg_row)
    # the study's rule ranks the compared methods only: a floor is a reference, never bold
    for row in grid:
        ranked = [None if is_floor(m) else c.value for m, c in zip(methods, row, strict=True)]
        for cell, style in zip(row, best_marks(ranked), strict=True):
            cell.style = style
    notes = [f"Bold: best final score in the row; underlined: above {UNDERLINE_FRACTION:.0%} of "
             "the best (the study's rule)."]
    if kind == "final_increase":
        notes.insert(0, "Cells: final score (+increase over the score before online finetuning).")
    else:
        notes.insert(0, "Cells: score before online finetuning → final score.")
    if dagger:
        notes.append("†: fewer finished runs than planned in this cell (see the runs table).")
    if diverged:
        notes.append("‡: includes diverged run(s) (critic |Q| past the bound), counted with the "
                     "scores they reached, as the study reports such runs (see the runs table).")
    floors = [m for m in methods if is_floor(m)]
    if floors:
        notes.append(", ".join(FLOORS[m] for m in floors) + ": trained online only, from an "
                     "empty buffer, with the same budget and evaluation (its 'before' is its "
                     "untrained policy); the floor the offline data should lift the methods "
                     "above, not ranked with them (docs/methods/td3-scratch.md).")
    if average and any(c.mark == "*" for c in grid[-1]):
        notes.append("*: averaged over the datasets this method has results for only.")
    return Table(title, methods, rows, grid, notes)


# ----------------------------------------------------------------------------- renderers

def to_markdown(t: Table) -> str:
    def fmt(c: Cell) -> str:
        s = c.text + c.mark
        return f"**{s}**" if c.style == "bold" else f"<u>{s}</u>" if c.style == "underline" else s

    lines = [f"**{t.title}**", ""] if t.title else []
    lines += ["| " + " | ".join([t.row_header, *map(method_label, t.columns)]) + " |",
              "|" + "---|" * (len(t.columns) + 1)]
    lines += ["| " + " | ".join([r, *(fmt(c) for c in row)]) + " |" for r, row in zip(t.rows, t.cells, strict=True)]
    lines += [""] + [f"{n}  " for n in t.footnotes]
    return "\n".join(lines).rstrip() + "\n"


def to_html(t: Table) -> str:
    e = html.escape

    def fmt(c: Cell) -> str:
        s = e(c.text) + (f"<sup>{e(c.mark)}</sup>" if c.mark else "")
        s = f"<b>{s}</b>" if c.style == "bold" else f"<u>{s}</u>" if c.style == "underline" else s
        return f'<td class="{c.style}">{s}</td>' if c.style else f"<td>{s}</td>"

    out = ['<table class="paper">']
    if t.title:
        out.append(f"<caption>{e(t.title)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in
                                       [t.row_header, *map(method_label, t.columns)])
               + "</tr></thead><tbody>")
    for r, row in zip(t.rows, t.cells, strict=True):
        cls = ' class="avg"' if r.startswith("Average") else ""
        out.append(f"<tr{cls}><th>{e(r)}</th>" + "".join(fmt(c) for c in row) + "</tr>")
    out.append("</tbody></table>")
    if t.footnotes:
        out.append('<p class="footnote">' + "<br>".join(e(n) for n in t.footnotes) + "</p>")
    return "\n".join(out) + "\n"


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
        "→": r"$\rightarrow$", "—": "--", "†": r"$^\dagger$", "≥": r"$\geq$"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(t: Table) -> str:
    """A booktabs tabular (\\usepackage{booktabs})."""
    def fmt(c: Cell) -> str:
        s = _tex(c.text + c.mark)
        return rf"\textbf{{{s}}}" if c.style == "bold" else rf"\underline{{{s}}}" if c.style == "underline" else s

    lines = [r"\begin{tabular}{l" + "r" * len(t.columns) + "}", r"\toprule",
             " & ".join(_tex(h) for h in [t.row_header, *map(method_label, t.columns)]) + r" \\",
             r"\midrule"]
    for r, row in zip(t.rows, t.cells, strict=True):
        if r.startswith("Average"):
            lines.append(r"\midrule")
        lines.append(" & ".join([_tex(r), *(fmt(c) for c in row)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    head = [f"% {_tex(t.title)}"] if t.title else []
    return "\n".join(head + lines + [f"% {n}" for n in t.footnotes]) + "\n"


def to_csv(t: Table) -> str:
    """Tidy: one line per cell with its text, value and style."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([t.row_header.lower(), "method", "text", "final", "style", "mark"])
    for r, row in zip(t.rows, t.cells, strict=True):
        for m, c in zip(t.columns, row, strict=True):
            w.writerow([r, m, c.text, "" if c.value is None else repr(c.value), c.style, c.mark])
    return buf.getvalue()


def write_table(t: Table, stem: str | os.PathLike) -> list[Path]:
    """<stem>.html, .md, .tex and .csv, each written atomically."""
    stem = Path(stem)
    return [atomic_write_text(stem.with_name(stem.name + ext), fn(t)) for ext, fn in (
        (".html", to_html), (".md", to_markdown), (".tex", to_latex), (".csv", to_csv))]


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, *, datasets: Sequence[str],
                 paper_names: dict[str, str | None], methods: Sequence[str] | None = None,
                 labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Long table, one row per dataset x method: our mean final (+increase) with the number of
    runs, the study's published cell, and the difference."""
    methods = sort_methods(set(ours["method"]) | set(paper["method"])) if methods is None else methods
    o = {(r.dataset, r.method): r for r in ours.itertuples(index=False)}
    p = {(r.dataset, r.method): r for r in paper.itertuples(index=False)}
    rows = []
    for d in datasets:
        pd_name = paper_names.get(d)
        for m in methods:
            a, b = o.get((d, m)), p.get((pd_name, m)) if pd_name else None
            if a is None and b is None:
                continue
            scored = a if a is not None and not pd.isna(a.final) else None
            rows.append({
                "dataset": (labels or {}).get(d, d), "paper_dataset": pd_name or "—",
                "method": method_label(m),
                "ours": (_cell_text("final_increase", scored.final, scored.increase, None)
                         if scored is not None else "—"),
                "runs": f"{a.n}/{a.n_runs}" if a is not None else "0",
                "paper": _cell_text("final_increase", b.final, b.increase, None) if b is not None else "—",
                "difference": (f"{scored.final - b.final:+.2f}"
                               if scored is not None and b is not None else ""),
            })
    return pd.DataFrame(rows, columns=["dataset", "paper_dataset", "method", "ours", "runs",
                                       "paper", "difference"])


def frame_to_markdown(df: pd.DataFrame) -> str:
    """A plain DataFrame as a Markdown table (pandas' to_markdown needs tabulate)."""
    def esc(v: object) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
