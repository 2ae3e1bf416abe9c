"""The run core (docs/architecture.md, "The run loops"): the parts every loop is composed of.

    context.py       RunContext: task, offline data, seeds, environments, log
    state.py         RunState (and the MLP / PDT variants): the typed, checkpointed state
    checkpointer.py  one checkpoint format
    recorder.py      config.json, curve.csv, diagnostics.csv, summary.json
    evaluator.py     evaluation episodes, online collection, the frozen state normalisation
    core.py          RunCore: update counter, divergence, schedules, the driver
"""
