"""Files and directories written atomically: built under a temporary name beside the destination, fsynced, renamed.

A kill at any moment leaves the previous directory or the new one, never a half-written one; between the
two renames of `replace_dir` the previous one is `NAME.old`, and `recover_dir` brings it back.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

TMP_PREFIX = ".tmp-"


def as_os_error(exc: BaseException) -> OSError | None:
    """The OSError behind a write failure. safetensors reports its own as SafetensorError("... I/O error:
    File too large (os error 27)"), which would otherwise escape every `except OSError` as a traceback."""
    if isinstance(exc, OSError):
        return exc
    found = re.search(r"I/O error: (.*?) \(os error (\d+)\)", str(exc))
    return OSError(int(found.group(2)), found.group(1)) if found else None


def fsync_tree(path: str) -> None:
    """Flush a finished directory's files and entries to disk, so a rename never points at empty files
    after a power loss (a killed process alone loses nothing that reached the page cache)."""
    for root, _, files in os.walk(path):
        for name in files:
            _fsync_file(os.path.join(root, name))
        _fsync_dir(root)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def ordinary_permissions(path: str) -> None:
    """Give a tree the modes a plain mkdir and open() would (umask applied): mkdtemp makes 0700, and some
    writers (safetensors) make 0600 files, so other users on a shared machine could not read the model."""
    umask = _umask()
    for root, _, files in os.walk(path):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            file = os.path.join(root, name)
            os.chmod(file, (0o666 | (os.stat(file).st_mode & 0o111)) & ~umask)


def replace_dir(tmp: str, final: str) -> None:
    """Move a finished directory into place; the previous one survives as `final.old` until then."""
    ordinary_permissions(tmp)
    fsync_tree(tmp)
    old = final + ".old"
    if os.path.exists(final):
        if os.path.exists(old):
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(os.path.dirname(os.path.abspath(final)))
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: str) -> None:
    """After a kill between the two renames of replace_dir, bring the previous directory back."""
    old = final + ".old"
    if not os.path.exists(final) and os.path.exists(old):
        os.replace(old, final)
    elif os.path.exists(old):
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(final: str) -> Iterator[str]:
    """Yield a fresh temporary directory; on success it replaces `final`, on any error it is removed."""
    final = os.path.abspath(final)
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.path.basename(final)}-", dir=parent)
    try:
        yield tmp
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_beside(path: str | os.PathLike, suffix: str = "") -> str:
    """Create an empty temporary file beside `path`, with the permissions a plain open() would give it."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.path.basename(path)}-", suffix=suffix,
                               dir=os.path.dirname(path) or ".")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    return tmp


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path` to write; on success it is fsynced and renamed to `path`, on any
    error removed. For files written piece by piece (streamed vectors, shuffled lines)."""
    path = os.fspath(path)
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a whole file beside its destination, fsync it, rename it into place; nothing is left on error."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
