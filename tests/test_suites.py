"""The study's other suites: registry, domain rules on hand-built episodes, data/env agreement."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from odtbench.data import minari_io
from odtbench.data.trajectories import Trajectory
from odtbench.hyperparameters.resolve import resolve
from odtbench.suites import antmaze, maze2d
from odtbench.suites.common import OfflinePrep
from odtbench.suites.standins import WaypointController, collect
from odtbench.suites.wrappers import (
    AffineReward,
    DelayedReward,
    delay_rewards,
    drop_trivial,
    preprocess,
    split_at_goal,
)
from odtbench.tasks import get_task, list_tasks

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # AntMaze-v4 is "out of date"


def _traj(rewards, obs_dim=3, terminated=False):
    n = len(rewards)
    obs = np.arange((n + 1) * obs_dim, dtype=np.float32).reshape(n + 1, obs_dim)
    term = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    term[-1], trunc[-1] = terminated, not terminated
    return Trajectory(obs[:-1], np.zeros((n, 2), np.float32), np.asarray(rewards, np.float32),
                      obs[1:].copy(), term, trunc)


class _Counter(gym.Env):
    """Reward t+1 at step t, success when the reward is 3; ends (terminated) after `n` steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, n=7, rewards=None):
        self.n, self.rewards = n, rewards

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        r = float(self.rewards[self.t]) if self.rewards is not None else float(self.t + 1)
        self.t += 1
        return np.zeros(1, np.float32), r, self.t >= self.n, False, {"success": r == 3.0}


def _replay(actions):
    """A policy that plays back fixed actions."""
    it = iter(actions)
    return lambda obs: next(it)


def _env_rewards(env, steps=100):
    env.reset(seed=0)
    out = []
    for _ in range(steps):
        _, r, term, trunc, _ = env.step(np.zeros(1, np.float32))
        out.append(r)
        if term or trunc:
            break
    return np.array(out)


# ---- registry and presets -----------------------------------------------------------------

def test_suites_register_the_studys_matrix():
    sizes = {"adroit": 12, "antmaze": 6, "maze2d": 4, "mujoco-delayed": 12}
    for suite, n in sizes.items():
        tasks = list_tasks(suite)
        assert len(tasks) == n
        assert all(t.source.startswith("generated:") for t in tasks)
    assert {t.score_kind for t in list_tasks("antmaze")} == {"success_rate"}
    assert get_task("adroit/hammer-cloned").paper_dataset == "hammer-cloned-v1"
    assert get_task("antmaze/antmaze-large-play").published_source == \
        "generated:d4rl-minari/D4RL/antmaze/large-play-v1"
    assert get_task("maze2d/maze2d-open").paper_dataset == "maze2d-open-v0"
    assert get_task("mujoco-delayed/ant-random").source == "generated:delayed-5/mujoco/ant-random"
    assert get_task("adroit/pen-human").source == "generated:standin/adroit/pen-human"


def test_maze_layouts_are_gymnasium_roboticss():
    from gymnasium_robotics.envs.maze import maps

    for ours, theirs in ((antmaze.U_MAZE, maps.U_MAZE), (antmaze.MEDIUM_MAZE, maps.MEDIUM_MAZE),
                         (antmaze.LARGE_MAZE, maps.LARGE_MAZE), (maze2d.OPEN_MAZE, maps.OPEN)):
        assert [list(r) for r in ours] == theirs
    with pytest.raises(ValueError, match="wall"):
        antmaze.eval_map(antmaze.U_MAZE, (1, 1), (2, 1))


def test_domain_presets_follow_the_readme():
    am = resolve("antmaze/antmaze-umaze", "TD3+ODT", "paper").hyperparameters
    assert (am["gamma"], am["rl_from_start"], am["critic_layernorm"]) == (0.998, True, True)
    assert (am["actor_update_interval"], am["pretrain_updates"], am["pretrain_iters"]) == (1, 5000, 40)
    assert (am["replay_size"], am["online_budget"], am["context_len"], am["eval_rtg"]) == \
        (2000, 1_000_000, 1, -100.0)
    hammer = resolve("adroit/hammer-human", "TD3+ODT", "paper").hyperparameters
    assert (hammer["eval_context_len"], hammer["eval_rtg"], hammer["reward_scale"]) == (1, 160.0, 1.0)
    assert resolve("adroit/pen-human", "ODT", "paper").hyperparameters["eval_context_len"] == 5
    assert resolve("adroit/door-human", "ODT", "paper").hyperparameters["reward_scale"] == 0.001
    mo = resolve("maze2d/maze2d-open", "TD3+ODT", "paper").hyperparameters
    assert (mo["pretrain_updates"], mo["replay_size"], mo["lr_critic"]) == (10_000, 10_000, 2e-4)
    dl = resolve("mujoco-delayed/hopper-random", "TD3+ODT", "paper").hyperparameters
    assert (dl["critic_layernorm"], dl["actor_update_interval"], dl["min_transitions_per_iter"]) == \
        (False, 2, 1000)


# ---- delayed reward -----------------------------------------------------------------------

def test_delay_pays_each_period_sum_at_its_end():
    r = np.arange(1, 8, dtype=np.float32)  # 1..7
    out = delay_rewards(r, 5)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 15, 0, 13])
    np.testing.assert_array_equal(delay_rewards(r, 1), r)
    np.testing.assert_array_equal(delay_rewards(r[:5], 5), [0, 0, 0, 0, 15])
    assert delay_rewards(r, 3).sum() == r.sum()


@pytest.mark.parametrize("n", [7, 10, 3])
def test_delayed_env_wrapper_matches_the_offline_rule(n):
    env_r = _env_rewards(DelayedReward(_Counter(n), 5))
    np.testing.assert_array_equal(env_r, delay_rewards(np.arange(1, n + 1, dtype=np.float64), 5))
    # a time limit counts as the episode end too
    limited = _env_rewards(DelayedReward(gym.wrappers.TimeLimit(_Counter(50), 7), 5))
    np.testing.assert_array_equal(limited, [0, 0, 0, 0, 15, 0, 13])


def test_delayed_task_data_and_env_agree():
    task = get_task("mujoco-delayed/hopper-random")
    raw_env, env = task.make_data_env(), task.make_env(max_episode_steps=12)
    acts = np.random.default_rng(0).uniform(-1, 1, (12, 3)).astype(np.float32)
    raw = collect(raw_env, _replay(acts), 12, seed=3, episode_cap=12)
    env.reset(seed=3)
    env_r = [env.step(a)[1] for a in acts]
    data_r = np.concatenate([t.rewards for t in preprocess(raw, task.prep)])
    np.testing.assert_allclose(data_r, env_r, rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(data_r) == np.count_nonzero(np.asarray(env_r)) <= 3


# ---- AntMaze ------------------------------------------------------------------------------

def test_antmaze_split_marks_every_end_terminal():
    pieces = split_at_goal(_traj([0, 0, 1, 1, 1, 0, 1, 0, 0]))
    assert [len(p) for p in pieces] == [3, 1, 1, 2, 2]
    assert all(p.terminations[-1] and p.terminations.sum() == 1 for p in pieces)
    assert [bool(p.truncations[-1]) for p in pieces] == [False, False, False, False, True]
    for p in pieces:  # each piece stays contiguous
        np.testing.assert_array_equal(p.next_observations[:-1], p.observations[1:])


def test_antmaze_keeps_only_the_first_nine_one_step_trajectories():
    singles = [_traj([1.0]) for _ in range(12)]
    long = _traj([0, 0, 0])
    kept = drop_trivial([singles[0], long, *singles[1:]], keep=9)
    assert len(kept) == 10 and kept[1] is long and sum(len(t) == 1 for t in kept) == 9
    assert kept[-1] is singles[8]
    prep = OfflinePrep(reward_shift=-1.0, antmaze=True, keep_one_step=9)
    out = preprocess([_traj([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0])], prep)
    assert [len(t) for t in out] == [3, *[1] * 9, 2]  # 11 goal steps -> 2 of 11 singles dropped
    np.testing.assert_array_equal(out[0].rewards, [-1, -1, 0])  # shaped r - 1
    assert all(t.rewards[-1] == 0 for t in out[1:-1]) and out[-1].rewards.tolist() == [-1, -1]


def test_antmaze_env_shapes_reward_but_success_uses_the_sparse_one():
    env = AffineReward(_Counter(5, rewards=[0, 0, 1, 0, 1]), -1.0, 1.0)
    env.reset(seed=0)
    steps = [env.step(np.zeros(1, np.float32)) for _ in range(5)]
    assert [s[1] for s in steps] == [-1, -1, 0, -1, 0]
    task = get_task("antmaze/antmaze-umaze")
    assert task.score_kind == "success_rate" and task.online_env.reward_shift == -1.0
    assert task.prep.reward_shift == -1.0 and task.eval_env == task.online_env
    assert dict(task.eval_env.base_kwargs)["continuing_task"] is False
    assert dict(task.data_env.base_kwargs)["continuing_task"] is True


def test_antmaze_eval_env_starts_and_ends_at_the_d4rl_cells():
    env = get_task("antmaze/antmaze-umaze").make_eval_env()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (31,)
    maze = env.unwrapped.maze
    start, goal = obs[:2], obs[2:4]  # achieved_goal, desired_goal
    assert tuple(maze.cell_xy_to_rowcol(start)) == (1, 1)
    assert tuple(maze.cell_xy_to_rowcol(goal)) == (3, 1)
    _, r, term, _, info = env.step(np.zeros(8, np.float32))
    assert r == -1.0 and not term and info["success"] is False


# ---- observation flattening ---------------------------------------------------------------

def test_dict_observations_flatten_the_same_in_data_and_env(tmp_path):
    """A raw dict-observation Minari dataset, read back by minari_io, equals the env's view."""
    import minari
    from minari.data_collector import EpisodeBuffer

    task = get_task("maze2d/maze2d-umaze")
    raw = gym.make("PointMaze_UMaze-v3", max_episode_steps=6)
    flat = task.make_data_env(max_episode_steps=6)
    acts = np.random.default_rng(1).uniform(-1, 1, (6, 2)).astype(np.float32)
    o, _ = raw.reset(seed=5)
    dict_obs = [o] + [raw.step(a)[0] for a in acts]
    f, _ = flat.reset(seed=5)
    flat_obs = [f] + [flat.step(a)[0] for a in acts]
    keys = ("achieved_goal", "desired_goal", "observation")
    np.testing.assert_array_equal(flat_obs[0], np.concatenate([dict_obs[0][k] for k in keys]))
    buf = EpisodeBuffer(id=0, observations={k: np.stack([d[k] for d in dict_obs]) for k in keys},
                        actions=acts, rewards=np.zeros(6), terminations=np.zeros(6, bool),
                        truncations=np.array([False] * 5 + [True]))
    with minari_io._minari_root(tmp_path), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers("test/pointmaze/raw-v0", [buf], env=raw.spec,
                                           algorithm_name="hand", author="t", code_permalink="x",
                                           author_email="x@y")
    back = minari_io.load_trajectories("test/pointmaze/raw-v0", tmp_path)[0]
    np.testing.assert_allclose(back.observations, np.asarray(flat_obs[:-1]), rtol=1e-6)
    np.testing.assert_allclose(back.next_observations[-1], flat_obs[-1], rtol=1e-6)


# ---- scoring ------------------------------------------------------------------------------

def test_scores_undo_the_reward_scaling():
    pen = get_task("adroit/pen-human")
    raw = 1500.0
    expect = 100 * (raw - 96.262799) / (3076.8331017826877 - 96.262799)
    assert pen.normalize(raw / 100) == pytest.approx(expect)
    assert pen.normalize_offline(raw / 100) == pytest.approx(expect)
    hammer = get_task("adroit/hammer-expert")
    assert hammer.normalize(12.794134825156867) == pytest.approx(
        100 * (12794.134825156867 + 274.856578) / (12794.134825156867 + 274.856578))
    # maze2d-open: online/eval rewards are /100 (the authors' bug), offline ones are not
    op = get_task("maze2d/maze2d-open")
    assert op.online_env.reward_scale == 0.01 and op.prep.reward_scale == 1.0
    assert op.normalize(1.0) == pytest.approx(op.normalize_offline(100.0))
    assert op.normalize_offline(20.66) == pytest.approx(100.0)
    assert get_task("mujoco-delayed/hopper-medium").normalize(3234.3) == pytest.approx(100.0)


def test_adroit_data_and_env_rewards_agree():
    task = get_task("adroit/door-human")
    acts = np.random.default_rng(2).uniform(-1, 1, (5, 28)).astype(np.float32)
    raw = collect(task.make_data_env(), _replay(acts), 5, seed=7)
    env = task.make_env()
    env.reset(seed=7)
    env_r = [env.step(a)[1] for a in acts]
    data_r = preprocess(raw, task.prep)[0].rewards
    np.testing.assert_allclose(data_r, env_r, rtol=1e-5)
    np.testing.assert_allclose(data_r * 100, raw[0].rewards, rtol=1e-5)


# ---- stand-in data ------------------------------------------------------------------------

def test_waypoint_controller_reaches_the_goal():
    task = get_task("maze2d/maze2d-umaze")
    env = task.make_eval_env()
    policy = WaypointController(env, np.random.default_rng(0))
    obs, _ = env.reset(seed=1)
    ret = 0.0
    for _ in range(task.max_episode_steps):
        obs, r, term, trunc, _ = env.step(policy(obs))
        ret += r
        if term or trunc:
            break
    assert ret > 100  # in the goal region for most of the 300 steps
    assert task.normalize(ret) > 50


def test_standin_builds_loads_and_says_so(tmp_path):
    from odtbench.data.build import build_dataset, load_task_dataset

    info = build_dataset("maze2d/maze2d-umaze", "smoke", root=tmp_path, progress=False)
    assert info["recipe"]["standin"] is True and info["stats"]["transitions"] == 300
    assert "STAND-IN" in minari_io.read_metadata(info["id"], tmp_path)["description"]
    trajs, _ = load_task_dataset("maze2d/maze2d-umaze", "smoke", root=tmp_path)
    env = get_task("maze2d/maze2d-umaze").make_env()
    assert trajs[0].observations.shape[1] == env.observation_space.shape[0] == 8
    assert sum(len(t) for t in trajs) == 300 and len(trajs) == 3


def test_published_source_gets_the_same_preprocessing(tmp_path):
    from odtbench.data.build import build_dataset, load_task_dataset

    rng = np.random.default_rng(0)
    raw = [_traj(rng.uniform(-5, 50, 4), obs_dim=45) for _ in range(2)]
    for t in raw:
        t.actions = rng.uniform(-1, 1, (len(t), 24)).astype(np.float32)
    minari_io.write_dataset("D4RL/pen/human-v2", raw, env_id="AdroitHandPen-v1", root=tmp_path,
                            ref_min_score=0.0, ref_max_score=1.0, description="fake raw",
                            algorithm_name="hand")
    task = get_task("adroit/pen-human")
    info = build_dataset(task.key, "paper", root=tmp_path, source=task.published_source, progress=False)
    assert info["recipe"]["standin"] is False and info["recipe"]["minari_id"] == "D4RL/pen/human-v2"
    trajs, _ = load_task_dataset(task.key, "paper", root=tmp_path, source=task.published_source)
    np.testing.assert_allclose(np.concatenate([t.rewards for t in trajs]),
                               np.concatenate([t.rewards for t in raw]) / 100, rtol=1e-6)
