"""MuJoCo with delayed reward (study App. G, Tab. 10): the MuJoCo suite's 12 tasks, M = 5.

Rewards are summed over periods of M steps and paid at each period's last step (and at
the episode's end), zeros in between — in the offline data (the MuJoCo suite's dataset of
the same scale, delayed) and in the env, by the same rule (`odtbench.suites.wrappers`).
Returns are unchanged, so scores use the MuJoCo D4RL references as they are.
"""

from __future__ import annotations

from odtbench.suites.common import ENV_MODULE, EnvRecipe, OfflinePrep, SuiteTask, define_env
from odtbench.tasks import list_tasks, register_task

SUITE = "mujoco-delayed"
DELAY = 5  # M (the authors' `--delayed_reward 5`)


def register() -> None:
    for base in list_tasks("mujoco"):
        stem = base.env_id.split("-")[0]
        version = base.env_id.rsplit("-", 1)[1]
        recipe = EnvRecipe.create(f"odtbench/{stem}Delayed{DELAY}-{version}", base.env_id,
                                  base.max_episode_steps, dict(base.env_kwargs), delay=DELAY)
        online = define_env(recipe)
        raw = define_env(EnvRecipe.create(f"odtbench/{stem}-{version}", base.env_id,
                                          base.max_episode_steps, dict(base.env_kwargs)))
        register_task(SuiteTask(
            suite=SUITE, dataset=base.dataset, domain=base.domain, env_id=online.name,
            source=f"generated:delayed-{DELAY}/{base.key}", quality=base.quality,
            score_kind=base.score_kind, max_episode_steps=base.max_episode_steps,
            paper_dataset=base.paper_dataset, env_module=ENV_MODULE,
            online_env=online, data_env=raw, prep=OfflinePrep(delay=DELAY),
            ref_min=base.ref_min, ref_max=base.ref_max, ref_source=base.ref_source,
            ref_name=base.ref_name, standin_size=0, hp=base.hp,  # the MuJoCo domain's rows
            notes=f"the {base.key} dataset with rewards delayed by M={DELAY}; {base.notes}",
        ))
