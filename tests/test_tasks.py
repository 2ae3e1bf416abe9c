"""Task registry: keys, references with provenance, normalisation, env construction."""

import dataclasses

import numpy as np
import pytest

from odtbench import tasks
from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.tasks import Task, get_reference, get_task, list_references, list_suites, list_tasks

D4RL = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0),
        "walker2d": (1.629008, 4592.3), "ant": (-325.6, 3879.7)}


def test_toy_task_fields():
    t = get_task("toy/bandit")
    assert (t.suite, t.dataset, t.domain, t.key) == ("toy", "bandit", "toy", "toy/bandit")
    assert t.env_id == "odtbench/ToyBandit-v0" and t.source == "generated:toy-bandit"
    assert (t.ref_min, t.ref_max, t.score_kind, t.max_episode_steps) == (0.0, 1.0, "raw", 1)
    assert t.paper_dataset is None


def test_mujoco_matrix_and_d4rl_references():
    keys = {t.key for t in list_tasks("mujoco")}
    assert keys == {f"mujoco/{d}-{q}" for d in D4RL for q in ("medium", "medium-replay", "random")}
    for t in list_tasks("mujoco"):
        assert (t.ref_min, t.ref_max) == D4RL[t.domain]
        assert t.ref_source == "D4RL (Fu et al. 2020) infos.py" and t.ref_name == "d4rl"
        assert t.env_id.endswith("-v5") and t.paper_dataset == f"{t.dataset}-v2"
        assert t.source == f"generated:d4rl/{t.quality}" and t.max_episode_steps == 1000
    assert get_task("mujoco/hopper-medium").published_source == "minari:mujoco/hopper/medium-v0"
    assert get_task("mujoco/hopper-random").published_source is None
    assert list_suites()[:2] == ["toy", "mujoco"]


def test_normalize_uses_the_reference():
    t = get_task("mujoco/hopper-random")
    lo, hi = D4RL["hopper"]
    assert t.normalize(lo) == pytest.approx(0.0)
    np.testing.assert_allclose(t.normalize([lo, hi, (lo + hi) / 2]), [0.0, 100.0, 50.0])
    assert t.reference == {"name": "d4rl", "min": lo, "max": hi,
                           "source": "D4RL (Fu et al. 2020) infos.py", "score_kind": "normalized"}


def test_every_domain_has_a_suite_random_reference_with_provenance():
    for domain in D4RL:
        ref = get_reference(domain, "suite-random-v5")
        assert ref.env_id.endswith("-v5") and "100 episodes" in ref.provenance
        assert ref.max == D4RL[domain][1]  # only the random end is suite-computed
        t = get_task(f"mujoco/{domain}-medium", reference="suite-random-v5")
        assert (t.ref_min, t.ref_name, t.ref_source) == (ref.min, "suite-random-v5", ref.source)
        assert t.normalize(ref.min) == pytest.approx(0.0)
    assert all(r.provenance for r in list_references())


def test_unknown_names_raise_one_line_errors():
    with pytest.raises(UnknownChoiceError, match="unknown task 'mujoco/hopper-expertt'") as e:
        get_task("mujoco/hopper-expertt")
    assert "\n" not in str(e.value) and "toy/bandit" in str(e.value)
    with pytest.raises(UnknownChoiceError):
        list_tasks("atari")
    with pytest.raises(UnknownChoiceError):
        get_task("toy/bandit", reference="nope")


def test_bad_task_definitions_are_rejected():
    good = get_task("toy/bandit")
    with pytest.raises(OdtbenchError, match="score_kind"):
        dataclasses.replace(good, score_kind="percent")
    with pytest.raises(OdtbenchError, match="ref_max"):
        dataclasses.replace(good, ref_min=1.0, ref_max=1.0)
    with pytest.raises(OdtbenchError, match="source"):
        dataclasses.replace(good, source="http://x")
    with pytest.raises(OdtbenchError, match="already registered"):
        tasks.register_task(good)


def test_register_a_later_suite_task(monkeypatch):
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    t = Task(suite="test-suite", dataset="hopper-medium", domain="hopper", env_id="Hopper-v5",
             source="generated:d4rl/medium", quality="medium", ref_min=0.0, ref_max=1.0,
             ref_source="x", score_kind="normalized", max_episode_steps=1000,
             paper_dataset="hopper-medium-v2")
    tasks.register_task(t)
    assert get_task("test-suite/hopper-medium") is t
    assert "test-suite" in list_suites() and list_tasks("test-suite") == [t]


def test_make_env_and_source_override():
    env = get_task("toy/bandit").make_env()
    obs, _ = env.reset(seed=0)
    _, r, term, _, _ = env.step(np.zeros(1, np.float32))
    assert obs.shape == (1,) and r == pytest.approx(1.0) and term
    t = get_task("mujoco/hopper-medium", source="minari:mujoco/hopper/medium-v0")
    assert (t.source_kind, t.source_name) == ("minari", "mujoco/hopper/medium-v0")
    assert get_task("mujoco/hopper-medium").source == "generated:d4rl/medium"  # registry unchanged


def test_the_dataset_writer_makes_halfcheetah_without_settotalmass(tmp_path, monkeypatch):
    """Minari's writer makes the env twice from its spec (spaces, reference-score env): both go
    through the suite's maker (odtbench.suites.mjcf.warning_free_makes), so `dataset build`
    prints no settotalmass warning."""
    from pathlib import Path

    import gymnasium as gym

    from odtbench.data.minari_io import write_dataset
    from odtbench.data.trajectories import Trajectory

    plain, models = gym.make, []

    def spy(env, **kwargs):
        made = plain(env, **kwargs)
        if "HalfCheetah" in str(getattr(env, "id", env)):
            models.append(Path(made.unwrapped.fullpath).read_text())
        return made

    monkeypatch.setattr(gym, "make", spy)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4, 17))
    traj = Trajectory(observations=obs[:-1], actions=rng.uniform(-1, 1, (3, 6)).astype(np.float32),
                      rewards=np.zeros(3, np.float32), next_observations=obs[1:].copy(),
                      terminations=np.zeros(3, bool), truncations=np.array([False, False, True]))
    write_dataset("test/halfcheetah-v0", [traj], env_id="HalfCheetah-v5", root=tmp_path,
                  ref_min_score=0.0, ref_max_score=1.0, description="test", algorithm_name="test")
    assert len(models) >= 2  # Minari made its envs, all without the deprecated attribute
    assert not [m for m in models if "settotalmass" in m]


def test_halfcheetah_without_settotalmass_is_identical():
    """odtbench/suites/mjcf.py: compiled from a model without the deprecated attribute (what
    MuJoCo warns about, from C, uncapturable here), with the same masses and dynamics."""
    from pathlib import Path

    import gymnasium as gym

    from odtbench.suites.mjcf import make

    ours = make("HalfCheetah-v5")
    theirs = gym.make("HalfCheetah-v5")
    assert "settotalmass" in Path(theirs.unwrapped.fullpath).read_text()
    assert "settotalmass" not in Path(ours.unwrapped.fullpath).read_text()
    a, b = ours.unwrapped.model, theirs.unwrapped.model
    for name in ("body_mass", "body_inertia", "body_subtreemass", "dof_invweight0"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    rng = np.random.default_rng(0)
    o1, _ = ours.reset(seed=1)
    o2, _ = theirs.reset(seed=1)
    for _ in range(20):
        act = rng.uniform(-1, 1, 6)
        o1, r1, *_ = ours.step(act)
        o2, r2, *_ = theirs.step(act)
        assert np.array_equal(o1, o2) and r1 == r2
