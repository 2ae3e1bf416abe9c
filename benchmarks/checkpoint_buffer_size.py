"""How much of a DT run's checkpoint is the unchanged offline part of its replay buffer?

Builds the trajectory FIFO exactly as a run does at the start of online finetuning (the top
`replay_size` offline trajectories, ODT's return sort) from a locally built dataset, adds the
given number of online trajectories (deep copies of offline ones, flagged online: only their
bytes matter here), and serialises the buffer's checkpoint entry two ways: every trajectory in full
(the format before 2026-12-02), and offline trajectories as references into the reloaded
dataset (TrajectoryBuffer.state_dict(offline)).

    MINARI_DATASETS_PATH=... python benchmarks/checkpoint_buffer_size.py \
        --task mujoco/hopper-random --online 0 250 1000 --out F.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import time
from pathlib import Path

import torch

from odtbench.data.build import load_task_dataset
from odtbench.data.replay import TrajectoryBuffer, prepare_offline


def _bytes(obj: object) -> int:
    f = io.BytesIO()
    torch.save(obj, f)
    return f.tell()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True)
    p.add_argument("--scale", default="quick")
    p.add_argument("--replay-size", type=int, default=1000)  # the study's MuJoCo buffer (Tab. 9)
    p.add_argument("--online", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    offline = prepare_offline(load_task_dataset(a.task, a.scale)[0]).trajectories
    rows = []
    for n_online in a.online:
        buf = TrajectoryBuffer(a.replay_size, offline)
        pool = offline[-max(n_online, 1):]
        buf.add([dataclasses.replace(copy.deepcopy(pool[i % len(pool)]), online=True) for i in range(n_online)])
        t0 = time.perf_counter()
        full = _bytes(buf.state_dict())
        t1 = time.perf_counter()
        refs = _bytes(buf.state_dict(offline))
        t2 = time.perf_counter()
        rows.append({"online_trajectories": n_online, "buffer_trajectories": len(buf),
                     "full_bytes": full, "with_offline_refs_bytes": refs,
                     "full_s": round(t1 - t0, 4), "with_offline_refs_s": round(t2 - t1, 4)})
        print(json.dumps(rows[-1]))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"task": a.task, "scale": a.scale, "replay_size": a.replay_size, "rows": rows},
                                    indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
