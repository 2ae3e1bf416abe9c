"""Fixtures shared by the test modules: tiny generated datasets under a temporary root."""

from __future__ import annotations

import os

import pytest

# Run-level tests, marked `slow` (pyproject.toml): those that need a generated dataset (they
# train, resume or run the workflow on it) or an executed workflow. `pytest -m "not slow"` is
# the quick local loop (README); `pytest` (and `.ci/run`) runs everything. Tests that run a
# whole pipeline without these fixtures carry `@pytest.mark.slow` themselves.
RUN_FIXTURES = frozenset({"hopper_data", "toy_data", "toy_root", "done", "finished"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _with_datasets_root(root):
    """Point $MINARI_DATASETS_PATH at `root` (progress bars off); returns the undo."""
    old = {k: os.environ.get(k) for k in ("MINARI_DATASETS_PATH", "ODTBENCH_PROGRESS")}
    os.environ.update(MINARI_DATASETS_PATH=str(root), ODTBENCH_PROGRESS="0")

    def undo() -> None:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return undo


@pytest.fixture(scope="module")
def hopper_data(tmp_path_factory):
    """The smoke-scale mujoco/hopper-random dataset, built once per test module."""
    from odtbench.data.build import build_dataset

    root = tmp_path_factory.mktemp("minari")
    undo = _with_datasets_root(root)
    build_dataset("mujoco/hopper-random", "smoke", root=root, progress=False)
    yield root
    undo()


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    """The smoke-scale toy/bandit dataset, built once per test module."""
    from odtbench.data.build import build_dataset

    root = tmp_path_factory.mktemp("minari")
    undo = _with_datasets_root(root)
    build_dataset("toy/bandit", "smoke", root=root)
    yield root
    undo()


@pytest.fixture()
def toy_data(tmp_path, monkeypatch):
    """A smoke toy dataset under a per-test root, which the runs of the test read."""
    from odtbench.data.build import build_dataset

    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    build_dataset("toy/bandit", "smoke", root=root, progress=False)
    return root
