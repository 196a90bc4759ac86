"""Every figure the package draws: spectrograms, score timelines, attention maps, training curves.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`) and written straight to
PNG files, so drawing never touches pyplot's global state or switches the backend of a notebook
that calls the library. Spectrograms have real axes: time in seconds, and each mel band labelled by
its centre frequency in Hz (Kaldi's mel scale, `ast_jax.frontend.kaldi.mel_band_centers`).

Shape legend: T frames, F mel bins, K windows, C classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ast_jax.config import ASTConfig
from ast_jax.files import atomic_write
from ast_jax.frontend.kaldi import FbankOptions, mel_band_centers

__all__ = ["save_explanation", "save_history_curves", "save_spectrogram", "save_timeline"]

_DPI = 100
_FREQUENCY_TICKS = 6  # labelled mel bands on a spectrogram's frequency axis
_TIMELINE_LABELS = 10  # labels drawn in a timeline


def _save(figure: Figure, path: str | os.PathLike) -> None:
    atomic_write(path, lambda temp: figure.savefig(temp, dpi=_DPI, format="png"))


def _spectrogram_axes(
    axes: Axes, values: NDArray, options: FbankOptions, *, cmap: str, start: float = 0.0
) -> Any:
    """Draws ``(T, F)`` features on ``axes``, time across (seconds from ``start``), mel bands up
    (labelled in Hz); returns the image. Data coordinates: seconds by band index."""
    shift = options.frame_shift / 1000
    frames, bands = values.shape
    image = axes.imshow(
        values.T,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        interpolation="nearest",
        extent=(start, start + frames * shift, -0.5, bands - 0.5),
    )
    ticks = np.unique(np.linspace(0, bands - 1, _FREQUENCY_TICKS).round().astype(int))
    centres = mel_band_centers(options)  # (F,), F == bands: the features were made with options
    axes.set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks])
    axes.set(xlabel="time (s)", ylabel="frequency (Hz, mel scale)")
    return image


def save_spectrogram(
    values: NDArray, options: FbankOptions, path: str | os.PathLike, *, title: str
) -> None:
    """Draws ``(T, F)`` log-mel features computed with ``options`` to a PNG."""
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.add_subplot()
    image = _spectrogram_axes(axes, values, options, cmap="magma")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="normalised log-mel")
    _save(figure, path)


def save_timeline(
    window_scores: NDArray,
    window_times: NDArray,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str,
) -> None:
    """Draws the scores over time of the labels that score highest in any window.

    Args:
      window_scores: ``(K, C)`` scores of each window.
      window_times: ``(K, 2)`` start and end of each window in seconds.
      labels: the C class names.
      path: the PNG to write.
      title: the figure title.
    """
    peak = window_scores.max(axis=0)  # (C,)
    rows = np.argsort(-peak, kind="stable")[:_TIMELINE_LABELS]
    # Column k spans from window k's start to the next start (the last to its end).
    edges = np.append(window_times[:, 0], window_times[-1, 1])
    figure = Figure(figsize=(12, 1 + 0.35 * len(rows)), layout="constrained")
    axes = figure.add_subplot()
    mesh = axes.pcolormesh(
        edges, np.arange(len(rows) + 1), window_scores[:, rows].T, cmap="viridis"
    )
    axes.set_yticks(np.arange(len(rows)) + 0.5, [labels[i] for i in rows])
    axes.invert_yaxis()
    axes.set(title=title, xlabel="time (s)")
    figure.colorbar(mesh, ax=axes, label="score")
    _save(figure, path)


def save_explanation(
    values: NDArray,
    heatmap: NDArray,
    config: ASTConfig,
    options: FbankOptions,
    top: Sequence[tuple[str, float]],
    path: str | os.PathLike,
    *,
    title: str,
    start: float = 0.0,
) -> None:
    """Draws ``(T, F)`` features with the ``(f_dim, t_dim)`` rollout heatmap over them.

    Args:
      values: the window's unpadded features.
      heatmap: the attention-rollout map of the window (`ast_jax.model.attention_maps`).
      config: the model config (patch size and strides place the heatmap's cells).
      options: the fbank options of the features (frame shift, mel bands).
      top: ``(label, score)`` pairs printed on the figure.
      path: the PNG to write.
      title: the figure title.
      start: the window's start in the clip, in seconds.
    """
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.add_subplot()
    _spectrogram_axes(axes, values, options, cmap="gray", start=start)
    shift = options.frame_shift / 1000
    # Patch (fi, ti) covers bins fi*fs .. fi*fs+P and frames ti*ts .. ti*ts+P: centre the cells.
    fs, ts, half = config.frequency_stride, config.time_stride, config.patch_size / 2
    left, right = half - ts / 2, half + (config.t_dim - 0.5) * ts  # frames
    extent = (start + left * shift, start + right * shift)
    extent += (half - fs / 2 - 0.5, half + (config.f_dim - 0.5) * fs - 0.5)
    image = axes.imshow(
        heatmap,
        origin="lower",
        aspect="auto",
        cmap="inferno",
        alpha=0.55,
        extent=extent,
        interpolation="bilinear",
    )
    axes.set(xlim=(start, start + len(values) * shift), ylim=(-0.5, values.shape[1] - 0.5))
    axes.set_title(title)
    text = "\n".join(f"{label}: {score:.3f}" for label, score in top)
    axes.text(0.01, 0.98, text, transform=axes.transAxes, va="top", color="white", fontsize=9)
    figure.colorbar(image, ax=axes, label="attention share")
    _save(figure, path)


def save_history_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draws the training loss and the train/validation accuracy (and mAP) per epoch to a PNG."""
    epochs = [record["epoch"] for record in history]
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [record["train_loss"] for record in history], marker="o")
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="loss")
    for key in ("train_accuracy", "val_accuracy", "ensemble_accuracy", "val_mAP"):
        if all(key in record for record in history):
            score_axes.plot(epochs, [record[key] for record in history], marker="o", label=key)
    score_axes.set(title="scores", xlabel="epoch")
    score_axes.legend(loc="lower right")
    score_axes.grid(alpha=0.3)
    _save(figure, path)
