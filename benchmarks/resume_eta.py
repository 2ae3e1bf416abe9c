"""How right is a resumed run's ETA (issue: a run a person can watch)?

Runs `odtbench run` (quick hopper-random TD3+ODT, seed 0), SIGKILLs it once its online
progress passes KILL_AT transitions, runs the same command again (it resumes from its
checkpoint) to the end, and records every progress line of both processes with the seconds
since that process started. Compare each ETA shown after the resume with the time the run
really took from there (`part2_s` minus the line's time).

    MINARI_DATASETS_PATH=... python benchmarks/resume_eta.py 20000 --run-dir DIR --out F.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

LINE = re.compile(r"progress (\w+) (\d+)/(\d+) (\w+) rate=(\S+)/s eta=(\S+)s")


def _part(cmd: list[str], env: dict[str, str], rec: dict[str, Any], key: str, out: Path,
          kill_at: int | None) -> float:
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         text=True)
    assert p.stderr is not None
    for line in p.stderr:
        m = LINE.search(line)
        if m:
            rec[key].append([round(time.time() - t0, 1), m.group(1), int(m.group(2)), m.group(6)])
            out.write_text(json.dumps(rec))
            if kill_at is not None and m.group(1) == "online" and int(m.group(2)) >= kill_at:
                p.send_signal(signal.SIGKILL)
                p.wait()
                return time.time() - t0
    p.wait()
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kill_at", type=int)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cmd = ["odtbench", "run", "--task", "mujoco/hopper-random", "--method", "TD3+ODT",
           "--seed", "0", "--scale", "quick", "--out", str(a.run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rec: dict[str, Any] = {"cmd": " ".join(cmd[:-1] + ["RUN_DIR"]), "kill_at": a.kill_at,
                           "lines1": [], "lines2": []}
    rec["part1_s"] = _part(cmd, env, rec, "lines1", a.out, a.kill_at)
    rec["part2_s"] = _part(cmd, env, rec, "lines2", a.out, None)
    rec["load_after"] = os.getloadavg()
    a.out.write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
