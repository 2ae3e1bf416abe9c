"""The run-directory lock: one process owns a run directory at a time.

`<run dir>/.lock` holds the owner (pid, host, start time) for the message a second process
prints; ownership itself is an exclusive `flock` on that file, which the kernel releases when
the owner exits in any way (kill -9 included), so a lock left by a dead process is simply
taken over, with no race between two processes doing so. On a filesystem without `flock`
the owner record alone decides: a live pid on this host owns the directory, anything else is
stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from odtbench.errors import OdtbenchError
from odtbench.runfiles.atomic import as_odtbench_error

LOCK_NAME = ".lock"
# Locks this process holds: path -> (fd, depth); the CLI and the run core may both take one.
_held: dict[Path, list[int]] = {}


class RunLockedError(OdtbenchError):
    """Another live process owns the run directory."""


def _owner_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "started_unix": time.time()})


def _read_owner(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _describe(owner: dict) -> str:
    if not owner:
        return "another process"
    return (f"process {owner.get('pid')} on {owner.get('host')} "
            f"(started {owner.get('started_at')})")


def _locked(directory: Path, owner: dict) -> RunLockedError:
    return RunLockedError(
        f"run directory {directory} is in use by {_describe(owner)}; wait for it to finish, "
        "stop it, or choose another --out")


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Own `directory` (created if missing) for the duration; re-entrant in one process.

    Raises RunLockedError naming the owner when a live process holds it.
    """
    directory = Path(directory).absolute()
    path = directory / LOCK_NAME
    if path in _held:
        _held[path][1] += 1
        try:
            yield path
        finally:
            _held[path][1] -= 1
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise as_odtbench_error(exc, directory, fix="make the run directory writable or "
                                "choose another --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _locked(directory, _read_owner(path)) from None
            # no flock on this filesystem: fall back to the owner record
            owner = _read_owner(path)
            if owner.get("host") == socket.gethostname() and _pid_alive(owner.get("pid")) \
                    and owner.get("pid") != os.getpid():
                raise _locked(directory, owner) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner_text().encode(), 0)
        _held[path] = [fd, 1]
    except BaseException:
        os.close(fd)
        raise
    try:
        yield path
    finally:
        _held.pop(path, None)
        os.close(fd)  # releases the flock; the file stays (unlinking it would race a waiter)
