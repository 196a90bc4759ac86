"""Where a pretrained file lives: a local directory as it is, or a Hugging Face hub repo id as a
snapshot in the local hub cache.

Hub ids go through `huggingface_hub.snapshot_download` (a dependency of the core install), so they
behave as transformers users know them: files are downloaded once into the shared hub cache
(``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) and reused from there, a snapshot that
is already cached loads when the hub cannot be reached, ``revision=`` picks a branch, tag or commit,
and ``local_files_only=True`` or the environment variables ``HF_HUB_OFFLINE=1`` /
``TRANSFORMERS_OFFLINE=1`` never touch the network. A snapshot transformers downloaded is the same
snapshot, and the other way round.

This module sits below every other part of the package and imports nothing from it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["is_offline", "resolve", "resolve_file"]

# "name" or "org/name" as the hub spells repo ids.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_TRUE = frozenset({"1", "on", "yes", "true"})


def is_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for cached files only."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _snapshot(
    repo_id: str,
    revision: str | None,
    files: list[str],
    *,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: bool | str | None,
    force_download: bool,
) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise ImportError(
            f"{repo_id!r} is not a local directory, and downloading it from the Hugging Face hub "
            "needs huggingface_hub (pip install huggingface_hub)"
        ) from error
    # Only what the caller set: the hub client's own defaults (and its environment) do the rest.
    options = {
        "revision": revision,
        "allow_patterns": files,
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "local_files_only": local_files_only or is_offline() or None,
        "token": token,
        "force_download": force_download or None,
    }
    options = {
        key: value
        for key, value in options.items()
        if value is not None or key in ("revision", "allow_patterns")
    }
    try:
        return Path(snapshot_download(repo_id, **options))
    except (OSError, ValueError) as error:
        mode = "offline mode, " if options.get("local_files_only") else ""
        raise OSError(
            f"{repo_id!r} is not a local directory and could not be downloaded from the Hugging "
            f"Face hub or found in its cache ({mode}unknown repo or revision, or no access?): "
            f"{error}"
        ) from error


def resolve(
    path_or_repo_id: str | os.PathLike[str],
    revision: str | None,
    files: list[str],
    *,
    subfolder: str = "",
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: bool | str | None = None,
    force_download: bool = False,
) -> Path:
    """A local directory as is, else the hub snapshot holding (those of) `files` that exist.

    Args:
      path_or_repo_id: a directory, or a hub repo id such as
        "MIT/ast-finetuned-audioset-10-10-0.4593".
      revision: hub branch, tag or commit (ignored for a local directory).
      files: the file names wanted, relative to `subfolder`; a snapshot fetches only these.
      subfolder: a folder inside the directory or repo that holds the files.
      cache_dir: the hub cache to use instead of huggingface_hub's default.
      local_files_only: use cached snapshots only, never the network (also implied by
        ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``).
      token: a hub token for private repos (None: huggingface_hub's stored login, if any).
      force_download: download again even when the files are cached.

    Returns:
      The directory holding the files (a local path, or a folder of a cached snapshot).

    Raises:
      NotADirectoryError: `path_or_repo_id` is a file.
      FileNotFoundError: neither a directory nor a hub repo id.
      ImportError / OSError: a hub id without huggingface_hub, or neither the hub nor the cache
        has it.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path / subfolder
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; expected a checkpoint directory")
    if not isinstance(path_or_repo_id, str) or not _REPO_ID.fullmatch(path_or_repo_id):
        raise FileNotFoundError(
            f"{path} is neither a directory nor a hub repo id (looking for {', '.join(files)})"
        )
    prefix = f"{subfolder.strip('/')}/" if subfolder.strip("/") else ""
    snapshot = _snapshot(
        path_or_repo_id,
        revision,
        [f"{prefix}{name}" for name in files],
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        force_download=force_download,
    )
    return snapshot / prefix if prefix else snapshot


def resolve_file(path_or_repo_id: str | os.PathLike[str], name: str, **hub: Any) -> Path:
    """The file ``name`` of a directory or hub repo (see `resolve`), or ``path_or_repo_id``
    itself when it is a file.

    Args:
      path_or_repo_id: a file, a directory or a hub repo id.
      name: the file wanted, e.g. ``config.json``.
      **hub: the keyword arguments of `resolve` (``revision``, ``subfolder``, ...).

    Raises:
      FileNotFoundError: no such path or repo id, or no ``name`` in it.
      ImportError / OSError: as `resolve`.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_file():
        return path
    revision = hub.pop("revision", None)
    file = resolve(path_or_repo_id, revision, [name], **hub) / name
    if not file.is_file():
        raise FileNotFoundError(f"no {name} in {file.parent}")
    return file
