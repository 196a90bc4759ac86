"""The metrics history of a training run: ``history.json``, ``history.csv`` and ``curves.png``.

One record per epoch: ``epoch``, ``step``, ``learning_rate``, ``train_loss``, ``train_accuracy``,
``seconds`` and, with validation data, ``val_*`` and ``ensemble_*`` (``accuracy``, ``mAP``,
``mAUC``, ``d_prime``; `ast_jax.training.metrics.evaluate`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ast_jax.files import atomic_write

__all__ = ["format_record", "write_history"]


def write_history(directory: str | os.PathLike, history: Sequence[dict[str, Any]]) -> None:
    """Writes ``history.json``, ``history.csv`` and ``curves.png`` into ``directory``, each
    atomically."""
    from ast_jax.plots import save_history_curves  # matplotlib only when a run writes its curves

    directory = Path(directory)
    text = json.dumps(list(history), indent=2) + "\n"
    atomic_write(directory / "history.json", lambda temp: Path(temp).write_text(text))
    columns = list(dict.fromkeys(key for record in history for key in record))

    def write_csv(temp: str) -> None:
        with open(temp, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(history)

    atomic_write(directory / "history.csv", write_csv)
    save_history_curves(history, directory / "curves.png")


def format_record(record: Mapping[str, Any]) -> str:
    """One epoch's record as ``name value`` pairs, rates in scientific notation."""
    parts = []
    for name, value in record.items():
        if isinstance(value, float):
            text = f"{value:.3g}" if name == "learning_rate" else f"{value:.4f}"
            parts.append(f"{name} {text}")
    return ", ".join(parts)
