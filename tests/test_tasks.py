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


# ---- the suite's hyperparameter rows (issue 28: suites own their domain rows) -------------


def _bare_task(**kw) -> Task:
    return Task(suite="test-suite", dataset="hopper-medium", domain="newdomain", env_id="Hopper-v5",
                source="generated:d4rl/medium", quality="medium", ref_min=0.0, ref_max=1.0,
                ref_source="x", score_kind="normalized", max_episode_steps=1000,
                paper_dataset=None, **kw)


def test_a_task_without_a_domain_row_is_refused_not_given_hoppers_rtgs(monkeypatch):
    from odtbench.hyperparameters.resolve import resolve

    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    tasks.register_task(_bare_task())
    with pytest.raises(OdtbenchError, match="test-suite/hopper-medium has no hyperparameter row "
                                            "for its domain 'newdomain'") as err:
        resolve("test-suite/hopper-medium", "TD3+ODT", "quick")
    assert "\n" not in str(err.value)
    # with its own row the task runs on its own RTGs, each value with the row's source
    row = tasks.HpRow({"eval_rtg": 11.0, "online_rtg": 22.0}, "my suite's row")
    tasks.register_task(_bare_task(hp=tasks.TaskHyperparameters(rows=(row,))), replace=True)
    cfg = resolve("test-suite/hopper-medium", "TD3+ODT", "quick")
    assert (cfg.hyperparameters["eval_rtg"], cfg.hyperparameters["online_rtg"]) == (11.0, 22.0)
    assert cfg.sources["eval_rtg"] == "my suite's row"


def test_rows_must_set_the_domains_rtgs():
    with pytest.raises(OdtbenchError, match="must set online_rtg"):
        tasks.TaskHyperparameters(rows=(tasks.HpRow({"eval_rtg": 1.0}, "s"),))
    with pytest.raises(UnknownChoiceError):
        tasks.HpRow({}, "s", (("rl_kind", "~", "td3"),))


@pytest.mark.parametrize(("when", "hp", "holds"), [
    ((("rl_kind", "!=", "none"), ("rl_coeff", ">", 0)), {"rl_kind": "td3", "rl_coeff": 0.1}, True),
    ((("rl_kind", "!=", "none"), ("rl_coeff", ">", 0)), {"rl_kind": "td3", "rl_coeff": 0.0}, False),
    ((("rl_kind", "!=", "none"),), {}, False),  # a key the method lacks: only "not in" holds
    ((("rl_kind", "not in", ("sac",)),), {}, True),
    ((("rl_kind", "in", ("sac",)),), {"rl_kind": "sac"}, True),
    ((("sup_coeff", "==", 0),), {"sup_coeff": 0.0}, True),
])
def test_row_conditions(when, hp, holds):
    assert tasks.HpRow({}, "s", when).applies(hp) is holds


def test_every_registered_task_has_its_rows_and_only_the_toy_a_probe():
    from odtbench.toy import ToyProbe

    for t in list_tasks():
        assert t.hp is not None, t.key
        assert (t.make_probe() is None) is (t.key != "toy/bandit"), t.key
    assert isinstance(get_task("toy/bandit").make_probe(), ToyProbe)
    # the delayed-reward suite runs on its MuJoCo domain's rows
    assert get_task("mujoco-delayed/walker2d-random").hp == get_task("mujoco/walker2d-random").hp
