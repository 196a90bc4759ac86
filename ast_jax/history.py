"""The metrics history of a training run: ``history.json``, ``history.csv`` and ``curves.png``.

One record per epoch: ``epoch``, ``step``, ``learning_rate``, ``train_loss``, ``train_accuracy``,
``seconds`` and, with validation data, ``val_*`` and ``ensemble_*`` (``accuracy``, ``mAP``,
``mAUC``, ``d_prime``; `ast_jax.metrics.evaluate`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_history", "write_history"]


def write_history(directory: str | os.PathLike, history: Sequence[dict[str, Any]]) -> None:
    """Writes ``history.json``, ``history.csv`` and ``curves.png`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "history.json").write_text(json.dumps(list(history), indent=2) + "\n")
    columns = list(dict.fromkeys(key for record in history for key in record))
    with open(directory / "history.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    plot_history(history, directory / "curves.png")


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draws the training loss and the train/validation accuracy (and mAP) per epoch to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [record["epoch"] for record in history]
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    loss_axes.plot(epochs, [record["train_loss"] for record in history], marker="o")
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="loss")
    for key in ("train_accuracy", "val_accuracy", "ensemble_accuracy", "val_mAP"):
        if all(key in record for record in history):
            score_axes.plot(epochs, [record[key] for record in history], marker="o", label=key)
    score_axes.set(title="scores", xlabel="epoch")
    score_axes.legend(loc="lower right")
    score_axes.grid(alpha=0.3)
    figure.savefig(path, dpi=100)
    plt.close(figure)
