"""Where a checkpoint lives: a local directory as it is, or a Hugging Face hub id as a snapshot.

Hub downloads go through `huggingface_hub.snapshot_download` (not a dependency of the core
install), which also serves snapshots already in its local cache.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["resolve"]

# "name" or "org/name" as the hub spells repo ids.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _snapshot(repo_id: str, revision: str | None, files: list[str]) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise ImportError(
            f"{repo_id!r} is not a local directory, and downloading it from the Hugging Face hub "
            "needs huggingface_hub (pip install huggingface_hub)"
        ) from error
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))
    except (OSError, ValueError) as error:
        raise OSError(
            f"{repo_id!r} is not a local directory and could not be downloaded from the Hugging "
            f"Face hub (offline, unknown repo or revision, or no access?): {error}"
        ) from error


def resolve(
    path_or_repo_id: str | os.PathLike[str], revision: str | None, files: list[str]
) -> Path:
    """A local directory as is, else a hub snapshot holding (those of) `files`.

    Raises:
      NotADirectoryError: `path_or_repo_id` is a file.
      FileNotFoundError: neither a directory nor a hub repo id.
      ImportError / OSError: a hub id without huggingface_hub, or the download failed.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; expected a checkpoint directory")
    if not isinstance(path_or_repo_id, str) or not _REPO_ID.fullmatch(path_or_repo_id):
        raise FileNotFoundError(f"{path} is neither a directory nor a hub repo id")
    return _snapshot(path_or_repo_id, revision, files)
