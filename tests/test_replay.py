"""ODT data semantics: return sort + lowest drop, trajectory FIFO, segment padding."""

import numpy as np
import torch

from odtbench.data.replay import SegmentSampler, TrajectoryBuffer, prepare_offline
from odtbench.data.trajectories import Trajectory


def traj(ret: float, length: int = 3, s: int = 2, terminal: bool = True, base: float = 0.0) -> Trajectory:
    obs = base + np.arange(length * s, dtype=np.float32).reshape(length, s)
    rew = np.full(length, ret / length, dtype=np.float32)
    term = np.zeros(length, bool)
    trunc = np.zeros(length, bool)
    (term if terminal else trunc)[-1] = True
    return Trajectory(obs, np.full((length, 1), 0.5, np.float32), rew, obs + 1, term, trunc)


def test_prepare_offline_sorts_ascending_and_drops_lowest():
    trajs = [traj(5.0), traj(1.0), traj(9.0), traj(3.0)]
    off = prepare_offline(trajs)
    assert [round(t.ret) for t in off.trajectories] == [3, 5, 9]
    states = np.concatenate([t.observations for t in trajs])
    np.testing.assert_allclose(off.state_mean, states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(off.state_std, states.std(0) + 1e-6, rtol=1e-6)


def test_buffer_keeps_top_returns_then_overwrites_lowest_first():
    off = prepare_offline([traj(r) for r in [1, 2, 3, 4, 5, 6]])  # keeps 2..6 ascending
    buf = TrajectoryBuffer(3, off.trajectories)
    assert [round(t.ret) for t in buf.trajectories] == [4, 5, 6]
    buf.add([traj(100.0)])
    assert [round(t.ret) for t in buf.trajectories] == [100, 5, 6]  # lowest replaced first
    buf.add([traj(200.0), traj(300.0), traj(400.0)])
    assert [round(t.ret) for t in buf.trajectories] == [400, 200, 300]  # FIFO wraps
    assert len(buf) == 3


def test_buffer_appends_while_not_full():
    buf = TrajectoryBuffer(4, [traj(1.0), traj(2.0)])
    buf.add([traj(7.0), traj(8.0), traj(9.0)])
    assert [round(t.ret) for t in buf.trajectories] == [2, 7, 8, 9]


def test_segment_left_padding_rtg_and_dones():
    # one trajectory of length 3, K = 5: every segment is left-padded
    t = traj(6.0, length=3, terminal=False)  # truncated end: not a TD terminal
    mean, std = np.array([1.0, 2.0], np.float32), np.array([2.0, 4.0], np.float32)
    sm = SegmentSampler([t], mean, std, context_len=5, reward_scale=0.5)
    g = torch.Generator().manual_seed(0)
    b = sm.sample(64, g)
    assert b["states"].shape == (64, 5, 2) and b["rtg"].shape == (64, 6)
    for i in range(64):
        m = b["mask"][i]
        n_real = int(m.sum())
        assert 1 <= n_real <= 3 and torch.all(m[: 5 - n_real] == 0) and torch.all(m[5 - n_real:] == 1)
        pad = b["states"][i, : 5 - n_real]
        assert torch.allclose(pad, torch.as_tensor(-mean / std).expand_as(pad))
        assert torch.all(b["dones"][i, : 5 - n_real] == 2) and torch.all(b["dones"][i, 5 - n_real:] == 0)
        start = 3 - n_real  # segments run to the trajectory end here
        real_states = b["states"][i, 5 - n_real:] * torch.as_tensor(std) + torch.as_tensor(mean)
        assert torch.allclose(real_states, torch.as_tensor(t.observations[start:]), atol=1e-5)
        # RTG: undiscounted suffix sums (2 per step) times reward_scale, then 0 after the end
        expect = [(3 - k) * 2.0 * 0.5 for k in range(start, 4)]
        assert torch.allclose(b["rtg"][i, 5 - n_real:], torch.tensor(expect))
        assert b["timesteps"][i, -1] == 2


def test_segment_full_length_and_terminal_done():
    t = traj(10.0, length=10, terminal=True)
    sm = SegmentSampler([t], np.zeros(2, np.float32), np.ones(2, np.float32), 4, 1.0)
    b = sm.sample(200, torch.Generator().manual_seed(1))
    full = b["mask"].sum(1) == 4
    assert full.any()
    # a done flag of 1 appears only at the trajectory's last step
    last = b["timesteps"] == 9
    assert torch.all(b["dones"][last & (b["mask"] > 0)] == 1)
    assert torch.all(b["dones"][~last & (b["mask"] > 0)] == 0)


def test_sampling_is_length_weighted():
    short, long = traj(1.0, length=1), traj(2.0, length=9)
    sm = SegmentSampler([short, long], np.zeros(2, np.float32), np.ones(2, np.float32), 2, 1.0)
    b = sm.sample(4000, torch.Generator().manual_seed(2))
    frac_short = float((b["mask"].sum(1) == 1).float().mean())  # short traj → 1 real step
    # P(short) = 1/10, plus the long trajectory's last start (1/9 of 9/10)
    assert abs(frac_short - 0.2) < 0.03


def test_buffer_checkpoint_refers_to_offline_trajectories_and_restores_them():
    import io

    import pytest

    from odtbench.errors import OdtbenchError

    offline = [traj(float(r), length=50) for r in range(6)]
    buf = TrajectoryBuffer(4, offline)
    buf.add([traj(9.0, length=50)])
    buf.add([traj(10.0, length=50)])
    d = buf.state_dict(offline)
    ids = {id(t) for t in offline}
    kinds = [isinstance(e, Trajectory) for e in d["trajectories"]]
    assert kinds.count(False) == sum(id(t) in ids for t in buf.trajectories) == 2
    full, small = io.BytesIO(), io.BytesIO()
    torch.save(buf.state_dict(), full)
    torch.save(d, small)
    assert small.tell() < full.tell()
    back = TrajectoryBuffer.from_state_dict(d, offline)
    assert back.cursor == buf.cursor
    assert [float(t.rewards.sum()) for t in back.trajectories] == \
        [float(t.rewards.sum()) for t in buf.trajectories]
    assert all(a is b for a, b in zip(back.trajectories, buf.trajectories, strict=True) if id(b) in ids)
    changed = [traj(float(r) + 0.5, length=50) for r in range(6)]
    with pytest.raises(OdtbenchError, match="dataset changed since the checkpoint"):
        TrajectoryBuffer.from_state_dict(d, changed)
