"""Writing files and directories so that a crash never leaves a partial or mixed one, and reading
JSON files with errors that name the file.

Every file the package writes goes through `atomic_write`: the content is written to a temporary
file in the target's directory, flushed to disk, and renamed over the target with `os.replace`,
which is atomic on POSIX and Windows. A reader sees the old file or the new one, never a mix.

Outputs made of several files (checkpoint directories, export artifacts) go through
`atomic_directory`: the files are written into a temporary sibling directory, which then takes the
target's place as a whole. On Linux the two directories are exchanged in one step
(``renameat2(RENAME_EXCHANGE)``); elsewhere the old directory is first moved aside, so a crash in
that instant leaves no directory at the target (and the old one beside it), never a mix. A file of
an earlier checkpoint that the new one lacks is never left behind.

Files are created with the permissions the process's umask gives new files (``0666 & ~umask``),
as ``open`` would, not the private ``0600`` of a temporary file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_directory", "atomic_write", "read_json_object", "save_npy", "write_json"]

_TEMP_SUFFIX = ".tmp"


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; read it once, while nothing else writes files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flushes a file (or, on POSIX, a directory entry) to the disk."""
    if os.path.isdir(path) and sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Calls ``write(temporary_path)``, then moves the temporary file to ``path``.

    The parent directory is created if needed. If ``write`` raises, the temporary file is removed
    and ``path`` is left as it was.

    Returns:
      ``path`` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_umask())
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Writes ``data`` as indented, key-sorted JSON with a final newline, atomically.

    Raises:
      ValueError: ``data`` holds NaN or infinity, which JSON cannot represent.
    """
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is not valid UTF-8 JSON, or holds something other than an object;
        the message names the file and the place of a syntax error.
    """
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Writes ``array`` as a ``.npy`` file at exactly ``path``, atomically."""

    def write(temp: str) -> None:
        with open(temp, "wb") as file:  # a file object: np.save would append ".npy" to a name
            np.save(file, array)

    return atomic_write(path, write)


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], *, replaceable: Collection[str] | None = None
) -> Iterator[Path]:
    """Yields an empty temporary directory; when the block ends without an exception, it
    replaces ``path`` as a whole (see the module docstring). On an exception it is removed and
    ``path`` is left as it was.

    Args:
      path: the directory to write.
      replaceable: if given, an existing ``path`` is replaced only if every entry in it has one
        of these names, so that a directory of other files is never deleted by mistake.

    Raises:
      FileExistsError: ``path`` is a file, or holds entries not in ``replaceable``.
    """
    path = Path(path)
    _check_replaceable(path, replaceable)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(path)
    temp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX))
    try:
        yield temp
        os.chmod(temp, 0o777 & ~_umask())
        _check_replaceable(path, replaceable)  # again: the block may have taken a while
        _swap_into_place(temp, path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _check_replaceable(path: Path, replaceable: Collection[str] | None) -> None:
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise FileExistsError(f"{path} is a file; give a directory path to write")
    if replaceable is None or not path.is_dir():
        return
    foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in replaceable)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{path} holds files that are not part of what is written there ({shown}); "
            "choose a new or empty directory, or move them away"
        )


def _remove_stale_siblings(path: Path) -> None:
    """Removes temporary directories that an interrupted earlier write of ``path`` left behind."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{_TEMP_SUFFIX}"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _swap_into_place(new: Path, target: Path) -> None:
    """Moves directory ``new`` to ``target``, replacing a directory there."""
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # it now holds the old directory
    else:
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    if sys.platform != "win32":
        _fsync(target.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return getattr(libc, "renameat2", None)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths (Linux ``renameat2``); False where that is not supported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
