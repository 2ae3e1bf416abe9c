"""The one atomic writer of odtbench: every result, checkpoint and build record goes through it.

A write goes to a temp file with a unique name in the target's directory (so `os.replace` is a
rename on one filesystem), is flushed and fsynced, renamed over the target, and the directory
is fsynced so the rename survives a power cut. Readers see the old file or the new one, never
a partial one; a killed writer leaves at most a `.<name>.<pid>-<random>.tmp` file, which
`clean_stray_temps` removes when the directory's owner starts again (no other name: files
the suite did not write are never deleted). `write_texts` publishes files that belong
together only once all are written.

Disk-full and read-only failures become one-line `OdtbenchError`s that say so and name the fix
(`os_error_message`); the CLI uses the same mapping for any such `OSError` it sees.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

from odtbench.errors import OdtbenchError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


# HDF5 (h5py) reports a failed write as a RuntimeError, or an OSError without errno, whose
# text carries the C library's errno and message.
_DISK_FULL_TEXT = re.compile(r"errno = (28|122|27)\b|No space left on device|Disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of space (disk, quota or file-size limit)."""
    return getattr(exc, "errno", None) in DISK_FULL or bool(_DISK_FULL_TEXT.search(str(exc)))


def os_error_message(exc: BaseException, path: str | os.PathLike | None = None, *,
                     fix: str | None = None) -> str | None:
    """One line for a disk-full or read-only `OSError` (None for any other error); also for
    the errno-less errors that h5py raises on a full disk."""
    where = path if path is not None else (getattr(exc, "filename", None) or "the output")
    if is_disk_full(exc):
        why = getattr(exc, "strerror", None) or "no space left on device"
        return (f"cannot write {where}: disk full, quota or file-size limit reached "
                f"({why}); {fix or 'free some space and re-run: finished files are intact and a run resumes from its last checkpoint'}")
    if getattr(exc, "errno", None) in READ_ONLY:
        return (f"cannot write {where}: read-only or not writable ({getattr(exc, 'strerror', '')}); "
                f"{fix or 'make it writable (chmod u+w) or choose another output path'}")
    return None


def as_odtbench_error(exc: BaseException, path: str | os.PathLike | None = None, *,
                      fix: str | None = None) -> BaseException:
    """`exc` as a one-line OdtbenchError when it is disk-full/read-only, else `exc` itself."""
    msg = os_error_message(exc, path, fix=fix)
    return OdtbenchError(msg) if msg else exc


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


# What `temp_name` makes, and nothing else: a user's own `notes.tmp` is never removed.
_TEMP_NAME = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


def _write_temp(path: Path, fill: Callable[[IO[bytes]], Any]) -> Path:
    """`fill`'s bytes in a fresh, fsynced temp file next to `path` (removed on any failure)."""
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # minus the umask, like any new file
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise as_odtbench_error(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each written temp file over its target, then fsync the directories."""
    try:
        for tmp, path in pairs:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise as_odtbench_error(exc, pairs[0][1]) from None
        raise
    for d in dict.fromkeys(path.parent for _, path in pairs):
        _fsync_dir(d)


def write_with(path: str | os.PathLike, fill: Callable[[IO[bytes]], Any]) -> Path:
    """Atomically create `path` with what `fill(binary_file)` writes into it."""
    path = Path(path)
    _publish([(_write_temp(path, fill), path)])
    return path


def _write_data(data: bytes, fh: IO[bytes]) -> None:
    fh.write(data)


def write_texts(files: dict[Path, str]) -> list[Path]:
    """Several UTF-8 files that belong together (a table and what was computed from it): all
    are written to temp files first and published only when every one is on disk, so a full
    disk leaves all the old files, never one new beside one old."""
    pairs: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            data = text.encode("utf-8")
            pairs.append((_write_temp(Path(path), partial(_write_data, data)), Path(path)))
    except BaseException:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)
        raise
    _publish(pairs)
    return [path for _, path in pairs]


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, written as is (no newline translation)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """`obj` as JSON (strict: NaN/inf are an error here; results.atomic_write_json maps them)."""
    return write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def torch_save(path: str | os.PathLike, payload: Any) -> Path:
    """torch.save, atomically. Serialised in memory first: torch's own file writer reports a
    full disk as "unexpected pos ...", a plain write reports ENOSPC."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_with(path, lambda fh: fh.write(buf.getbuffer()))


def clean_stray_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove temp files that killed writers of this module left in `directory` (not
    recursive; only `temp_name`'s pattern). Call it only while owning the directory (the run
    lock), so no live writer's temp file is removed."""
    removed: list[Path] = []
    d = Path(directory)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        if is_temp_name(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass  # read-only: the write that needs the space will say so
    return removed
