"""Crash-safe file and folder operations: durable writes, renames, atomic swaps and deletes.

They exist so that a kill -9 at any instant leaves the last good checkpoint loadable. A write is
flushed and fsynced before the rename that publishes it; a rename is fsynced through its folder; a
folder is swapped atomically where the OS can (renameat2 RENAME_EXCHANGE) and deleted only after it
has been renamed out of sight. Callers reach these through the module (`atomic.rename(...)`), and
they call one another the same way, so a test can interpose on any of them to kill a save midway.

This module knows nothing of checkpoints; it imports nothing from horseshoe.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any

TRASH_PREFIX = ".trash-"  # what `delete` renames a folder to first; leftovers of a kill carry it


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (so renames inside it survive a power cut), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Write a text file and flush it to disk before returning."""
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def rename(source: Path, target: Path) -> None:
    """Rename `source` to `target` (atomic on one filesystem; replaces a file at `target`)."""
    os.rename(source, target)


def remove(path: Path) -> None:
    """Delete a file or folder if it is there, best effort: a leftover is the caller's to clean up later."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@functools.cache
def _renameat2() -> Any:
    try:  # glibc >= 2.28 on Linux; absent elsewhere
        function = ctypes.CDLL(None, use_errno=True).renameat2 if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 with RENAME_EXCHANGE); False where the OS or filesystem cannot."""
    function, at_fdcwd, rename_exchange = _renameat2(), -100, 2
    if function is None:
        return False
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):  # unsupported here
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def unlink(path: Path) -> None:
    """Delete one file (atomic: a kill leaves it there or gone) and flush its folder; raises OSError."""
    os.unlink(path)
    fsync(path.parent)


def delete(path: Path) -> None:
    """Delete a folder by renaming it to a hidden trash name first: a kill midway leaves a
    .trash-NAME-PID folder to clean up, never a half-deleted NAME one."""
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{os.getpid()}")
    remove(trash)
    rename(path, trash)
    remove(trash)


def link_copy(source: Path, target: Path) -> None:
    """Make `target` a fresh folder of hard links to the files of `source`, flushed to disk."""
    remove(target)
    target.mkdir()
    for file in source.iterdir():
        try:
            os.link(file, target / file.name)
        except OSError:  # no hard links on this filesystem: a copy costs space, not safety
            shutil.copy2(file, target / file.name)
    fsync(target)
