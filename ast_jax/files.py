"""Writing files so that a crash never leaves a partial one.

Every file the package writes (checkpoints, configs, training state, feature caches) goes through
`atomic_write`: the content is written to a temporary file in the target's directory and renamed
over the target with `os.replace`, which is atomic on POSIX and Windows. A reader sees the old file
or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "save_npy", "write_json"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Calls ``write(temporary_path)``, then moves the temporary file to ``path``.

    The parent directory is created if needed. If ``write`` raises, the temporary file is removed
    and ``path`` is left as it was.

    Returns:
      ``path`` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Writes ``data`` as indented, key-sorted JSON with a final newline, atomically."""

    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.write("\n")

    return atomic_write(path, write)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Writes ``array`` as a ``.npy`` file at exactly ``path``, atomically."""

    def write(temp: str) -> None:
        with open(temp, "wb") as file:  # a file object: np.save would append ".npy" to a name
            np.save(file, array)

    return atomic_write(path, write)
