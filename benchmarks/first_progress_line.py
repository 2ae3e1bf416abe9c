"""When does a quick run's progress first move? Starts `odtbench run` (quick hopper-random
TD3+ODT, seed 0) with stderr not a terminal, prints each stderr line with the seconds since
the start, and stops the run at the first progress line with units done > 0.

    MINARI_DATASETS_PATH=... python benchmarks/first_progress_line.py --run-dir DIR
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time

MOVED = re.compile(r"progress \w+ (\d+)/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.time()
    p = subprocess.Popen(["odtbench", "run", "--task", "mujoco/hopper-random", "--method",
                          "TD3+ODT", "--seed", "0", "--scale", "quick", "--out", a.run_dir],
                         env=env, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    for line in p.stderr:
        print(f"{time.time() - t0:6.1f}s {line.rstrip()}")
        m = MOVED.search(line)
        if m and int(m.group(1)) > 0:
            p.kill()
            break
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
