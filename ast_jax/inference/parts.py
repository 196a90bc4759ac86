"""Batch inference in parts: one ordered list of inputs cut into consecutive parts, each written
whole, so that a run over millions of inputs can be spread over processes, stopped, restarted and
merged into exactly the output of a single run.

A parts directory holds:

- ``run.json``: the run's settings (the command, a fingerprint of the input list, the part size, a
  fingerprint of the model, the options that change results). Every process of a run, and every
  restart, must bring the same settings (`start_parts` refuses others), so that the parts on disk
  all belong to one computation.
- ``part-00000.json``, ``part-00001.json``, ...: part ``k`` covers inputs ``[k * part_size,
  (k + 1) * part_size)``. It names its failed inputs (source and error) and, for ``classify``,
  holds one JSON record per classified input, in input order. For ``embed`` the embeddings are in
  ``part-0000k.npz`` (the `save_embeddings` layout, for this part's inputs), written before the
  JSON. Both are written atomically and the JSON last: a part is finished when its JSON exists,
  and an interrupted run leaves only finished parts (and perhaps an orphaned ``.npz``, rewritten
  on restart).

The parts do not depend on the number of processes: process ``i`` of ``n`` runs the parts ``k``
with ``k % n == i`` (`assigned_parts`), so a run restarted with another process count runs just
the parts still missing. `merge_parts` concatenates the parts in order, and refuses while any is
missing.

Shape legend: K windows of one input, D hidden.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ast_jax.files import atomic_write
from ast_jax.inference.embeddings import save_embeddings
from ast_jax.inference.results import Embedding, Failure

__all__ = [
    "KINDS",
    "PART_SIZE",
    "RUN_FILE",
    "MergedParts",
    "PartsError",
    "PartsRun",
    "assigned_parts",
    "fingerprint_inputs",
    "fingerprint_model",
    "merge_parts",
    "read_manifest",
    "start_parts",
    "write_part",
    "write_parts",
]

PART_SIZE = 1000  # inputs per part unless told otherwise
RUN_FILE = "run.json"
KINDS = ("classify", "embed")
_LAYOUT = "ast-jax parts 1"
# Settings of run.json that say what was computed; a run with other values is refused. The rest
# (the model's name, the format or file the merge writes by default, the inputs that named no
# audio) are recorded as the first process found them.
_COMPARED = ("layout", "command", "inputs", "part_size", "model_sha256", "options")


class PartsError(ValueError):
    """A parts directory that does not fit: other settings, missing or inconsistent parts."""


def read_manifest(path: str | os.PathLike) -> list[Path]:
    """The inputs a CSV manifest lists: the first column of each row, a path relative to the CSV's
    folder (absolute paths stay as they are). Blank rows and a header row whose first cell is
    ``path`` are skipped; other columns (e.g. the labels of a training manifest) are ignored.

    Raises:
      OSError: the file cannot be read.
      ValueError: the manifest lists no inputs.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row and row[0].strip()]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise ValueError(f"manifest {path} lists no inputs")
    return [path.parent / row[0].strip() for row in rows]


def fingerprint_inputs(inputs: Sequence[str | os.PathLike]) -> str:
    """SHA-256 of the input list (each path as text, in order)."""
    digest = hashlib.sha256()
    for source in inputs:
        digest.update(os.fsencode(str(source)) + b"\0")
    return digest.hexdigest()


def fingerprint_model(config: Any, params: Any, extractor: Any = None) -> str:
    """SHA-256 of a model: the config, the feature extractor and every parameter (name, dtype,
    shape and bytes), so that a run restarted with other weights under the same name is caught."""
    digest = hashlib.sha256()
    digest.update(repr(config).encode())
    digest.update(repr(extractor).encode())

    def walk(tree: Any, prefix: str) -> None:
        if isinstance(tree, Mapping):
            for key in sorted(tree, key=str):
                walk(tree[key], f"{prefix}/{key}")
            return
        array = np.ascontiguousarray(np.asarray(tree))
        digest.update(f"{prefix}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.view(np.uint8).reshape(-1).data)

    walk(params, "")
    return digest.hexdigest()


def assigned_parts(num_parts: int, process_index: int = 0, process_count: int = 1) -> list[int]:
    """The parts process ``process_index`` of ``process_count`` runs: ``k % process_count ==
    process_index``."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    return list(range(process_index, num_parts, process_count))


@dataclasses.dataclass(frozen=True)
class PartsRun:
    """A parts directory and the run it holds (see the module docstring).

    Attributes:
      directory: the parts directory.
      kind: ``"classify"`` or ``"embed"``.
      num_inputs: inputs in the global list.
      part_size: inputs per part (the last part may hold fewer).
      settings: the content of ``run.json``.
    """

    directory: Path
    kind: str
    num_inputs: int
    part_size: int
    settings: dict[str, Any]

    @property
    def num_parts(self) -> int:
        return -(-self.num_inputs // self.part_size)

    def span(self, part: int) -> range:
        """Indices into the global input list of the inputs of ``part``."""
        if not 0 <= part < self.num_parts:
            raise IndexError(f"part {part} is not in [0, {self.num_parts})")
        start = part * self.part_size
        return range(start, min(start + self.part_size, self.num_inputs))

    def record_path(self, part: int) -> Path:
        """The part's JSON, written last."""
        return self.directory / f"part-{part:05d}.json"

    def arrays_path(self, part: int) -> Path:
        """An ``embed`` part's embeddings (absent when all its inputs failed)."""
        return self.directory / f"part-{part:05d}.npz"

    def is_written(self, part: int) -> bool:
        """Whether ``part`` is finished (its JSON exists, and for ``embed`` its arrays)."""
        record = self.record_path(part)
        if not record.is_file():
            return False
        if self.kind == "embed":
            count = json.loads(record.read_text(encoding="utf-8")).get("embeddings", 0)
            return count == 0 or self.arrays_path(part).is_file()
        return True

    def missing(self) -> list[int]:
        """The parts not written yet, in order."""
        return [part for part in range(self.num_parts) if not self.is_written(part)]


def start_parts(
    directory: str | os.PathLike,
    *,
    kind: str,
    inputs: Sequence[str | os.PathLike],
    part_size: int = PART_SIZE,
    model_sha256: str,
    options: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
) -> PartsRun:
    """Opens a parts directory for a run, creating it and its ``run.json`` if needed.

    Every process of a run calls this with the same arguments; the first writes ``run.json`` (all
    would write the same bytes), the others and any restart check theirs against it.

    Args:
      directory: the parts directory.
      kind: ``"classify"`` or ``"embed"``.
      inputs: the global, ordered input list.
      part_size: inputs per part.
      model_sha256: `fingerprint_model` of the model.
      options: JSON-ready options that change the results (window, hop, top-k, ...).
      info: JSON-ready notes kept with the settings but not compared (the model's name, the
        merge's default output, the inputs that named no audio).

    Raises:
      PartsError: ``run.json`` holds other settings.
      OSError: the directory cannot be written.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ValueError(f"part_size must be an int >= 1, got {part_size!r}")
    directory = Path(directory)
    settings = {
        "layout": _LAYOUT,
        "command": kind,
        "inputs": {"count": len(inputs), "sha256": fingerprint_inputs(inputs)},
        "part_size": part_size,
        "model_sha256": model_sha256,
        "options": dict(options),
        **{key: value for key, value in (info or {}).items() if key not in _COMPARED},
    }
    settings = json.loads(json.dumps(settings))  # as it reads back: lists, not tuples
    path = directory / RUN_FILE
    if not path.is_file():
        atomic_write(path, lambda temp: _write_json(temp, settings))
    recorded = _read_settings(directory)
    differences = [
        f"{key}: {_short(settings.get(key))} here, {_short(recorded.get(key))} there"
        for key in _COMPARED
        if settings.get(key) != recorded.get(key)
    ]
    if differences:
        raise PartsError(
            f"{directory} holds parts of a run with other settings ({'; '.join(differences)}); "
            "give the same inputs, model and options, or another directory"
        )
    return PartsRun(directory, kind, len(inputs), part_size, recorded)


def open_parts(directory: str | os.PathLike) -> PartsRun:
    """The run a parts directory holds, from its ``run.json``.

    Raises:
      PartsError: no readable ``run.json``.
    """
    directory = Path(directory)
    settings = _read_settings(directory)
    try:
        return PartsRun(
            directory,
            settings["command"],
            int(settings["inputs"]["count"]),
            int(settings["part_size"]),
            settings,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PartsError(f"{directory / RUN_FILE} is not a parts run: {error!r}") from error


def write_part(run: PartsRun, part: int, outcomes: Sequence[Any]) -> Path:
    """Writes one finished part.

    Args:
      run: the run.
      part: the part's number.
      outcomes: one per input of ``run.span(part)``, in order: a `Failure`, or for ``classify``
        a JSON-ready record (e.g. the ``--format json`` object), for ``embed`` an `Embedding`.

    Returns:
      The part's JSON.
    """
    span = run.span(part)
    if len(outcomes) != len(span):
        raise ValueError(f"part {part} has {len(span)} inputs, got {len(outcomes)} outcomes")
    failures = [
        {"index": index, "source": outcome.source, "error": str(outcome.error)}
        for index, outcome in zip(span, outcomes, strict=True)
        if isinstance(outcome, Failure)
    ]
    done = [outcome for outcome in outcomes if not isinstance(outcome, Failure)]
    record: dict[str, Any] = {"part": part, "first": span.start, "inputs": len(span)}
    if run.kind == "classify":
        record["results"] = done
    else:
        if not all(isinstance(outcome, Embedding) for outcome in done):
            raise TypeError("embed parts hold Embedding or Failure outcomes")
        if done:
            save_embeddings(run.arrays_path(part), done)
        record["embeddings"] = len(done)
        record["durations"] = [embedding.duration for embedding in done]
    record["failures"] = failures
    return atomic_write(run.record_path(part), lambda temp: _write_json(temp, record))


def write_parts(run: PartsRun, parts: Sequence[int], outcomes: Iterable[Any]) -> Iterator[int]:
    """Writes ``parts`` from one stream of outcomes over their inputs, concatenated in order
    (e.g. ``classify_iter`` over those inputs); yields each part once it is written."""
    stream = iter(outcomes)
    for part in parts:
        size = len(run.span(part))
        chunk = list(itertools.islice(stream, size))
        if len(chunk) != size:
            raise ValueError(f"the outcomes ended in part {part}")
        write_part(run, part, chunk)
        yield part


@dataclasses.dataclass(frozen=True)
class MergedParts:
    """A whole run, merged.

    Attributes:
      run: the run.
      results: in input order, the ``classify`` records or the `Embedding`\\ s of every input that
        did not fail.
      failures: ``(source, error message)`` of every failed input, in input order.
    """

    run: PartsRun
    results: list[Any]
    failures: list[tuple[str, str]]


def merge_parts(directory: str | os.PathLike) -> MergedParts:
    """Every part of a finished run, concatenated in order.

    Raises:
      PartsError: no run in ``directory``, missing parts (named), or a part that does not fit.
    """
    run = open_parts(directory)
    missing = run.missing()
    if missing:
        names = ", ".join(run.record_path(part).name for part in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise PartsError(
            f"{run.directory}: {len(missing)} of {run.num_parts} parts missing: {names}{more}"
        )
    results: list[Any] = []
    failures: list[tuple[str, str]] = []
    for part in range(run.num_parts):
        record = json.loads(run.record_path(part).read_text(encoding="utf-8"))
        span = run.span(part)
        if (record.get("part"), record.get("first"), record.get("inputs")) != (
            part,
            span.start,
            len(span),
        ):
            raise PartsError(f"{run.record_path(part)} does not hold part {part} of this run")
        failures += [(failure["source"], failure["error"]) for failure in record["failures"]]
        if run.kind == "classify":
            results += record["results"]
        elif record["embeddings"]:
            embeddings = _read_embeddings(run.arrays_path(part), record["durations"])
            if len(embeddings) != record["embeddings"]:
                raise PartsError(f"{run.arrays_path(part)} does not hold part {part}'s embeddings")
            results += embeddings
    return MergedParts(run, results, failures)


def _read_embeddings(path: Path, durations: Sequence[float]) -> list[Embedding]:
    """The embeddings of a part's ``.npz``, as `save_embeddings` wrote them."""
    with np.load(path) as archive:
        sources = [str(source) for source in archive["files"]]
        pooled = archive["pooled"]  # (inputs, D)
        names = set(archive.files)

        def optional(name: str, i: int) -> np.ndarray | None:
            return archive[f"{name}/{i}"] if f"{name}/{i}" in names else None

        return [
            Embedding(
                source=source,
                pooled=pooled[i],
                window_pooled=archive[f"window_pooled/{i}"],  # (K, D)
                window_times=archive[f"window_times/{i}"],  # (K, 2)
                duration=float(duration),
                last_hidden_state=optional("last_hidden_state", i),
                hidden_states=optional("hidden_states", i),
            )
            for i, (source, duration) in enumerate(zip(sources, durations, strict=True))
        ]


def _read_settings(directory: Path) -> dict[str, Any]:
    path = directory / RUN_FILE
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PartsError(f"{directory} holds no parts run (no {RUN_FILE})") from error
    except (OSError, ValueError) as error:
        raise PartsError(f"cannot read {path}: {error}") from error
    if not isinstance(settings, dict) or settings.get("layout") != _LAYOUT:
        raise PartsError(f"{path} is not a parts run of this version ({_LAYOUT})")
    return settings


def _write_json(path: str, data: Any) -> None:
    # Keys in insertion order: merged records print exactly as a single run prints them.
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=1)
        file.write("\n")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
