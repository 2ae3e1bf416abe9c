"""D4RL recipes and dataset building at tiny sizes: structure, determinism, reuse, errors."""

import dataclasses
import json

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch

from odtbench.agents import TD3, ReplayBuffer, TD3Config
from odtbench.data import build, recipes
from odtbench.data.build import build_dataset, dataset_id, load_task_dataset
from odtbench.data.minari_io import load_trajectories, trajectories_checksum
from odtbench.errors import DatasetError, UnknownChoiceError
from odtbench.tasks import get_task

torch.set_num_threads(1)
TINY = recipes.RecipeScale("smoke", random_transitions=150, medium_transitions=120,
                           expert_transitions=80, train_max_steps=160, expert_extra_steps=40,
                           start_steps=100, eval_every=40, eval_episodes=1, hidden=(8, 8),
                           batch_size=8, medium_score=5.0)
HOPPER = get_task("mujoco/hopper-medium")


def _short_hopper():  # 50-step episodes keep evaluations of a standing-still policy cheap
    return HOPPER.make_env(max_episode_steps=50)


def _gen(quality, workdir, scale=TINY):
    return recipes.generate(quality, _short_hopper, HOPPER.env_id, HOPPER.normalize, scale, workdir)


def _check_structure(trajs, n=None):
    if n is not None:
        assert sum(len(t) for t in trajs) == n
    for t in trajs:
        ends = t.terminations | t.truncations
        assert ends[-1] and not ends[:-1].any()  # exactly one end, at the last step
        assert not (t.terminations & t.truncations).any()
        np.testing.assert_array_equal(t.next_observations[:-1], t.observations[1:])


def test_random_recipe_structure_and_determinism(tmp_path):
    a, info = _gen("random", tmp_path)
    _check_structure(a, TINY.random_transitions)
    assert a[-1].truncations[-1]  # cut at exactly N transitions: a split end, not terminal
    assert sum(t.terminations.any() for t in a) >= 1  # random hopper falls over
    assert info["recipe"] == "d4rl/random" and info["scale"] == "smoke"
    b, _ = _gen("random", tmp_path / "other")
    assert trajectories_checksum(a) == trajectories_checksum(b)
    c, _ = _gen("random", tmp_path, dataclasses.replace(TINY, seed=1))
    assert trajectories_checksum(a) != trajectories_checksum(c)


def test_time_limit_ends_are_truncations():
    def make_env():
        return gym.make("Pendulum-v1", max_episode_steps=7)

    trajs = recipes.rollout(make_env, recipes.uniform_policy(make_env, 0), 30, seed=0)
    assert [len(t) for t in trajs] == [7, 7, 7, 7, 2]
    assert all(t.truncations[-1] and not t.terminations.any() for t in trajs)


def test_behaviour_training_is_shared_and_deterministic(tmp_path, monkeypatch):
    med, info = _gen("medium", tmp_path / "w1")
    _check_structure(med, TINY.medium_transitions)
    beh = info["behaviour"]
    assert beh["env_steps"] <= TINY.train_max_steps and beh["eval_history"]
    assert beh["target_reached"] == (beh["last_eval_score"] >= TINY.medium_score)
    ckpt = recipes._ckpt_dir(tmp_path / "w1", HOPPER.env_id, TINY)
    assert (ckpt / "medium.pt").is_file()

    # medium-replay reuses the checkpoint: no second training
    calls = []
    real_train = recipes._train
    monkeypatch.setattr(recipes, "_train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    rep, rinfo = _gen("medium-replay", tmp_path / "w1")
    assert calls == [] and rinfo["behaviour"]["env_steps"] == beh["env_steps"]
    _check_structure(rep, beh["env_steps"])  # the whole buffer up to the medium point
    exp, einfo = _gen("expert", tmp_path / "w1")
    assert calls == [1]  # only the further training ran
    assert einfo["behaviour"]["env_steps"] == beh["env_steps"] + TINY.expert_extra_steps
    _check_structure(exp, TINY.expert_transitions)

    # a fresh workdir retrains and gets the same bytes of data
    med2, _ = _gen("medium", tmp_path / "w2")
    assert trajectories_checksum(med) == trajectories_checksum(med2)


def test_unknown_recipe_and_scale():
    with pytest.raises(UnknownChoiceError, match="unknown dataset recipe 'd4rl/great'"):
        recipes.generate("great", _short_hopper, HOPPER.env_id, HOPPER.normalize, TINY, None)
    with pytest.raises(UnknownChoiceError, match="unknown scale 'huge'"):
        recipes.get_scale("huge")
    with pytest.raises(UnknownChoiceError, match="unknown scale"):
        dataset_id("toy/bandit", "huge")


def test_td3_update_and_actor_loss_hook():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(3, 2, 64)
    for _ in range(64):
        buf.add(rng.normal(size=3), rng.uniform(-1, 1, 2), 1.0, rng.normal(size=3), False, False)
    seen = []

    def bc_loss(q1_pi, pi, batch):  # TD3+BC-style: lambda-normalised Q plus behaviour cloning
        seen.append(pi.shape)
        return -q1_pi.mean() / q1_pi.abs().mean().detach() + ((pi - batch["actions"]) ** 2).mean()

    agent = TD3(3, 2, -1.0, 1.0, TD3Config(hidden=(16, 16), batch_size=16), actor_loss=bc_loss)
    before = [p.clone() for p in agent.actor.parameters()]
    out1 = agent.update(buf.sample(16, rng))
    out2 = agent.update(buf.sample(16, rng))
    assert "actor_loss" not in out1 and "actor_loss" in out2 and seen == [(16, 2)]  # delay 2
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))
    a = agent.act(np.zeros(3), noise=0.5, rng=rng)
    assert a.shape == (2,) and np.all(np.abs(a) <= 1.0)


# ---- build / load -------------------------------------------------------------------------

def test_dataset_ids():
    assert dataset_id("toy/bandit", "quick") == dataset_id("toy/bandit", "paper") == "odtbench/toy/bandit-v0"
    assert dataset_id("mujoco/hopper-medium", "quick") == "odtbench/mujoco-hopper-medium/quick-v0"
    minari_task = get_task("mujoco/hopper-medium", source="minari:mujoco/hopper/medium-v0")
    assert dataset_id(minari_task, "paper") == "mujoco/hopper/medium-v0"


def test_build_toy_reuse_and_load(tmp_path, monkeypatch):
    info = build_dataset("toy/bandit", "smoke", root=tmp_path)
    assert info["id"] == "odtbench/toy/bandit-v0" and info["source"] == "generated:toy-bandit"
    assert info["stats"]["episodes"] == info["stats"]["transitions"] == 128
    assert info["reference"]["min"] == 0.0 and info["reference"]["source"]
    assert set(info["stats"]) >= {"return_mean", "return_std", "score_mean", "score_std"}
    on_disk = json.loads((tmp_path / info["id"] / build.INFO_FILE).read_text())
    assert on_disk == info
    monkeypatch.setattr(build, "_generate", lambda *a: pytest.fail("rebuilt an existing dataset"))
    assert build_dataset("toy/bandit", "quick", root=tmp_path) == info  # same data at every scale
    trajs, linfo = load_task_dataset("toy/bandit", "smoke", root=tmp_path)
    assert linfo == info and trajectories_checksum(trajs) == info["checksum"]
    assert all(t.terminations[0] and not t.truncations[0] for t in trajs)


def test_build_generated_mujoco_and_force(tmp_path, monkeypatch):
    monkeypatch.setitem(recipes.SCALES, "smoke", TINY)
    info = build_dataset("mujoco/hopper-random", "smoke", root=tmp_path, progress=False)
    assert info["id"] == "odtbench/mujoco-hopper-random/smoke-v0"
    assert info["stats"]["transitions"] == TINY.random_transitions
    assert info["reference"]["source"] == "D4RL (Fu et al. 2020) infos.py"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset(info["id"])  # plain Minari reads it, with the D4RL reference
    score = minari.get_normalized_score(ds, np.array([info["stats"]["return_mean"]]))[0] * 100
    assert score == pytest.approx(info["stats"]["score_mean"])
    again = build_dataset("mujoco/hopper-random", "smoke", root=tmp_path, force=True, progress=False)
    assert again["checksum"] == info["checksum"]  # rebuilt, same seed: same data


def test_missing_datasets_say_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as e:
        load_task_dataset("mujoco/hopper-random", "quick", root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert "`odtbench dataset build --task mujoco/hopper-random --scale quick`" in msg
    src = "minari:mujoco/hopper/medium-v0"
    with pytest.raises(DatasetError, match="minari download mujoco/hopper/medium-v0") as e:
        load_task_dataset("mujoco/hopper-medium", "paper", root=tmp_path, source=src)
    assert "generated equivalent" in str(e.value)

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(minari, "download_dataset", offline)
    with pytest.raises(DatasetError, match="could not be downloaded"):
        build_dataset("mujoco/hopper-medium", "paper", root=tmp_path, source=src)


def test_corrupt_dataset_is_reported_not_rebuilt(tmp_path):
    info = build_dataset("toy/bandit", "smoke", root=tmp_path)
    h5 = tmp_path / info["id"] / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_task_dataset("toy/bandit", "smoke", root=tmp_path)
    assert len(h5.read_bytes()) == 1000  # nothing overwritten
    assert len(build_dataset("toy/bandit", "smoke", root=tmp_path, force=True)["checksum"]) > 10
    assert len(load_trajectories(info["id"], tmp_path)) == 128  # force rebuilds it
