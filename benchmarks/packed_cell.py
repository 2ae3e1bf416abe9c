#!/usr/bin/env python
"""Wall time of one whole cell (task, method, scale; S seeds) trained packed against the same
seeds trained one after another (issue 14), from the runs' own summary.json files.

A packed seed's `wall_time_s` is the pack's (docs/performance.md), so the packed cell's time is
the largest of them; the unpacked cell's is the sum over its runs. Scores are listed too: a
packed seed is an equivalent replicate of its unpacked run, not the same numbers.

    python benchmarks/packed_cell.py --packed RUNS/packed/TD3+ODT \\
        --unpacked RUNS/unpacked/TD3+ODT --out evidence/verifications/packed-cell/packed-cell.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _summaries(method_dirs: list[Path]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for d in method_dirs:
        for p in sorted(d.glob("seed*/summary.json")):
            s = json.loads(p.read_text())
            if int(s["seed"]) in out:
                sys.exit(f"packed_cell: seed {s['seed']} appears twice ({p}); give each seed once")
            out[int(s["seed"])] = s
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--packed", nargs="+", type=Path, required=True, help="method folder(s) of the packed runs")
    p.add_argument("--unpacked", nargs="+", type=Path, required=True,
                   help="method folder(s) holding the unpacked runs' seed<k> directories")
    p.add_argument("--note", default="", help="machine and load, recorded with the result")
    p.add_argument("--out", type=Path, help="JSON to write")
    a = p.parse_args(argv)
    packed, unpacked = _summaries(a.packed), _summaries(a.unpacked)
    if sorted(packed) != sorted(unpacked) or not packed:
        sys.exit(f"packed_cell: packed seeds {sorted(packed)} and unpacked seeds {sorted(unpacked)} differ")
    if any(s["status"] != "complete" for s in [*packed.values(), *unpacked.values()]):
        sys.exit("packed_cell: every run must be complete")
    packed_s = max(s["wall_time_s"] for s in packed.values())
    unpacked_s = sum(s["wall_time_s"] for s in unpacked.values())
    result = {
        "seeds": sorted(packed), "note": a.note,
        "packed_wall_s": packed_s, "unpacked_wall_s_sum": unpacked_s,
        "unpacked_wall_s": {k: unpacked[k]["wall_time_s"] for k in sorted(unpacked)},
        "speedup": unpacked_s / packed_s,
        "final_score": {"packed": {k: packed[k]["final_score"] for k in sorted(packed)},
                        "unpacked": {k: unpacked[k]["final_score"] for k in sorted(unpacked)}},
    }
    text = json.dumps(result, indent=2)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(f"{len(packed)} seeds: packed {packed_s:.0f} s, one after another {unpacked_s:.0f} s "
          f"({result['speedup']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
