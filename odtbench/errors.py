"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class OdtbenchError(Exception):
    """An error caused by user input or missing data; the CLI prints it as one line."""


class UnknownChoiceError(OdtbenchError, KeyError):
    """A name (method, task, scale, ...) that is not one of the valid choices."""

    def __init__(self, kind: str, value: object, choices: Iterable[str]):
        self.kind, self.value, self.choices = kind, value, sorted(choices)
        super().__init__(f"unknown {kind} {value!r}; valid choices: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DatasetError(OdtbenchError):
    """A dataset that is missing, corrupt or cannot be obtained."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, Slurm's time limit, a stopped workflow): unwinds like Ctrl-C, so the
    run's files stay as its atomic writes left them and it resumes from its checkpoint."""
