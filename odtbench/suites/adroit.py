"""Adroit suite: {pen, hammer, door, relocate} x {human, cloned, expert} (paper Tab. 2).

Minari ids ``D4RL/<env>/<quality>-v2`` recover gymnasium-robotics ``AdroitHand<Env>-v1``.
Rewards are divided by 100 (pen, door, relocate) or 1000 (hammer) in the data and the env,
as the authors did (docs/suites.md, "Domain rules"); scores multiply returns back before D4RL normalisation.
"""

from __future__ import annotations

from odtbench.suites.common import (
    ENV_MODULE,
    NON_MUJOCO,
    EnvRecipe,
    SuiteTask,
    define_env,
    suite_reference,
    tab9,
)
from odtbench.suites.prep import OfflinePrep
from odtbench.tasks import register_task

SUITE = "adroit"
QUALITIES = ("human", "cloned", "expert")
# env -> (gymnasium-robotics id, episode length, reward scale of the authors' wrapper).
# Pen episodes are 100 steps in D4RL and the authors' runs (docs/suites.md);
# gymnasium-robotics registers AdroitHandPen-v1 with 200, so the recipe sets 100.
ENVS = {
    "pen": ("AdroitHandPen-v1", 100, 1 / 100),
    "hammer": ("AdroitHandHammer-v1", 200, 1 / 1000),
    "door": ("AdroitHandDoor-v1", 200, 1 / 100),
    "relocate": ("AdroitHandRelocate-v1", 200, 1 / 100),
}
# Transitions of the D4RL datasets (paper Tab. 4): the size of a paper-scale stand-in.
D4RL_SIZES = {
    ("pen", "expert"): 499_106, ("pen", "cloned"): 499_886, ("pen", "human"): 4_800,
    ("hammer", "expert"): 999_800, ("hammer", "cloned"): 999_872, ("hammer", "human"): 10_948,
    ("door", "expert"): 999_800, ("door", "cloned"): 999_939, ("door", "human"): 6_504,
    ("relocate", "expert"): 999_800, ("relocate", "cloned"): 999_724, ("relocate", "human"): 9_614,
}

# Paper Tab. 9 rows: K 5, 40K pretraining updates, 5000-trajectory buffer. RTGs in wrapper
# units (the env rewards are /100, hammer /1000). RTG scale 1.0 except door, which keeps 0.001
# (docs/suites.md, "Domain rules").
_ADROIT = {**NON_MUJOCO, "context_len": 5, "pretrain_updates": 40_000, "replay_size": 5000}
ROWS = {
    # readme: pen T_eval 5, hammer T_eval 1 (paper Tab. 9 swaps them: pen 1, hammer 5)
    "pen": {**_ADROIT, "eval_context_len": 5, "eval_rtg": 120.0, "online_rtg": 120.0,
            "reward_scale": 1.0},
    # readme RTG 160 = 160000 raw (paper Tab. 9: 16000 raw, i.e. 16)
    "hammer": {**_ADROIT, "eval_context_len": 1, "eval_rtg": 160.0, "online_rtg": 160.0,
               "reward_scale": 1.0},
    "door": {**_ADROIT, "eval_context_len": 1, "eval_rtg": 40.0, "online_rtg": 40.0,
             "reward_scale": 0.001},
    "relocate": {**_ADROIT, "eval_context_len": 1, "eval_rtg": 50.0, "online_rtg": 50.0,
                 "reward_scale": 1.0},
}


def register() -> None:
    for env, (base, steps, scale) in ENVS.items():
        name = base.removeprefix("AdroitHand").split("-")[0]
        online = define_env(EnvRecipe.create(f"odtbench/AdroitHand{name}Scaled-v1", base, steps,
                                             reward_scale=scale))
        raw = define_env(EnvRecipe.create(f"odtbench/AdroitHand{name}-v1", base, steps))
        for quality in QUALITIES:
            register_task(SuiteTask(
                suite=SUITE, dataset=f"{env}-{quality}", domain=env, env_id=online.name,
                source=f"generated:standin/{SUITE}/{env}-{quality}", quality=quality,
                score_kind="normalized", max_episode_steps=steps,
                paper_dataset=f"{env}-{quality}-v1", env_module=ENV_MODULE,
                published_source=f"generated:d4rl-minari/D4RL/{env}/{quality}-v2",
                online_env=online, data_env=raw, prep=OfflinePrep(reward_scale=scale),
                score_scale=1 / scale, standin_size=D4RL_SIZES[env, quality], hp=tab9(ROWS[env]),
                notes="stand-in data by default; D4RL used the mjrl Adroit v1 envs, this suite "
                      "the gymnasium-robotics 1.4.2 port",
                **suite_reference(env),
            ))
