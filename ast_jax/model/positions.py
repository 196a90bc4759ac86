"""Position-table adaptation for other input lengths, mel bins and strides.

The position table `(1, 2 + f_dim * t_dim, D)` holds the cls and distillation rows, then one row per
patch in frequency-major order (row `2 + fi * t_dim + ti`). Adapting it to another patch grid views
the patch rows as a grid `(D, f_dim, t_dim)`, changes the grid size, and flattens it back in the
same order behind the two token rows, which stay unchanged. Three rules (docs/checkpoints.md,
Position-table adaptation):

* "audioset": the original code's rule for AudioSet-finetuned weights. Time: if the new `t_dim` is
  smaller, cut it from the middle, columns `[Ws//2 - t//2, Ws//2 - t//2 + t)`; otherwise bilinear
  resize. Frequency: cut from the middle if smaller, resize if larger, keep if equal.
* "imagenet": the rule for ImageNet DeiT weights. Same cuts, but taken on `<=` instead of `<`.
  At equality both a cut and a resize are the identity, so the two rules give the same tables; both
  are kept so a call says which of the original code paths it restates.
* "prefix": keep the first `t_dim` columns (the frequency grid must be unchanged). A clip shorter
  than the model's input, padded at the end, occupies exactly these positions, so running the short
  clip unpadded with these positions is the padded computation minus the padding tokens.

Parity traps: the resize is PyTorch's `interpolate(mode="bilinear", align_corners=False)`, written
out below. `jax.image.resize` antialiases when downsampling (torch does not), and
`align_corners=True` or a half-pixel formula without the clamp at 0 gives different edge weights.

Shape legend: D hidden, Hs/Ws source grid (f_dim, t_dim), H/W target grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ast_jax.config import ASTConfig
from ast_jax.model.params import backbone_params, with_backbone

__all__ = [
    "GRID_FIELDS",
    "POSITION_RULES",
    "adapt_grid",
    "adapt_params",
    "adapt_position_embeddings",
    "bilinear_resize",
    "bucketed_length",
    "prefix_position_indices",
    "select_positions",
]

PositionRule = Literal["audioset", "imagenet", "prefix"]
POSITION_RULES: tuple[str, ...] = ("audioset", "imagenet", "prefix")
# The config fields that set the patch grid; a change to any of them needs an adapted table.
GRID_FIELDS = ("max_length", "num_mel_bins", "frequency_stride", "time_stride")
_TOKEN_ROWS = 2  # cls and distillation


def _resize_axis(grid: NDArray, size: int, axis: int) -> NDArray:
    """Linear interpolation of one axis to `size` samples, PyTorch's `align_corners=False`.

    Output index j samples x = max(0, (j + 0.5) * n_in / n_out - 0.5), between i0 = floor(x) and
    i1 = min(i0 + 1, n_in - 1) with weight w = x - i0. No antialiasing filter when shrinking.
    """
    n_in = grid.shape[axis]
    # Parity trap: torch rounds the scale to float32, forms the source index in double and keeps
    # it as float32. Exact float64 (or all-float32) indices move the weights by ~1e-7 * n_in,
    # a few 1e-6 after a 24 -> 101 upsample.
    scale = np.float64(np.float32(n_in / size))  # in/out, as torch does when given `size`
    x = np.maximum(scale * (np.arange(size) + 0.5) - 0.5, 0.0).astype(np.float32)
    i0 = np.minimum(np.floor(x).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    weight_shape = [1] * grid.ndim
    weight_shape[axis] = size
    w = (x - i0.astype(np.float32)).astype(grid.dtype).reshape(weight_shape)
    return (1 - w) * np.take(grid, i0, axis=axis) + w * np.take(grid, i1, axis=axis)


def bilinear_resize(grid: NDArray, size: tuple[int, int]) -> NDArray:
    """Bilinear resize of the last two axes as `torch.nn.functional.interpolate` does it.

    `mode="bilinear", align_corners=False`, no antialiasing; separable, width first then height
    (for bilinear weights the order changes only the float rounding).

    Args:
        grid: `(..., Hs, Ws)` array.
        size: `(H, W)`, each >= 1.

    Returns:
        `(..., H, W)` array of `grid`'s dtype.

    Raises:
        ValueError: `grid` has fewer than two axes or `size` is not two positive ints.
    """
    grid = np.asarray(grid)
    if grid.ndim < 2:
        raise ValueError(f"grid must have at least 2 axes (..., H, W), got shape {grid.shape}")
    _check_size(size)
    out = _resize_axis(grid, size[1], axis=-1)
    return _resize_axis(out, size[0], axis=-2)


def _check_size(size: tuple[int, int]) -> None:
    if len(size) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size):
        raise ValueError(f"size must be two ints >= 1, got {size!r}")


def _middle(n_in: int, n_out: int) -> slice:
    """The `n_out` entries around the middle of `n_in`, as the original code cuts them."""
    start = n_in // 2 - n_out // 2
    return slice(start, start + n_out)


def adapt_grid(grid: NDArray, size: tuple[int, int], *, rule: PositionRule) -> NDArray:
    """Cuts or resizes a patch-position grid `(D, Hs, Ws)` to `(D, H, W)` by `rule`.

    Time is handled first, then frequency, in the original code's order (see the module docstring
    for the rules).

    Args:
        grid: `(D, Hs, Ws)` patch rows of the position table:
            `grid[d, r, c] = pos[2 + r Ws + c, d]`.
        size: the target `(f_dim, t_dim)`.
        rule: "audioset", "imagenet" or "prefix".

    Returns:
        `(D, f_dim, t_dim)` grid.

    Raises:
        ValueError: an unknown rule, a `size` that is not two ints >= 1, or "prefix" asked for
            another frequency size or a longer time axis.
    """
    if rule not in POSITION_RULES:
        raise ValueError(f"rule must be one of {POSITION_RULES}, got {rule!r}")
    _check_size(size)
    f_dim, t_dim = size
    _, hs, ws = grid.shape
    if rule == "prefix":
        if f_dim != hs or t_dim > ws:
            raise ValueError(
                f"the prefix rule keeps the frequency grid and shortens time: source grid "
                f"{hs}x{ws}, target {f_dim}x{t_dim}"
            )
        return grid[:, :, :t_dim]
    # The original code's unequal conditions: ImageNet cuts on <=, AudioSet on < (same result).
    cut = (lambda new, old: new <= old) if rule == "imagenet" else (lambda new, old: new < old)
    if cut(t_dim, ws):
        grid = grid[:, :, _middle(ws, t_dim)]
    else:
        grid = bilinear_resize(grid, (hs, t_dim))
    if cut(f_dim, hs):
        return grid[:, _middle(hs, f_dim), :]
    return bilinear_resize(grid, (f_dim, t_dim)) if f_dim != hs else grid


def adapt_position_embeddings(
    table: NDArray, source: tuple[int, int], target: tuple[int, int], *, rule: PositionRule
) -> NDArray:
    """Adapts a position table `(1, 2 + Hs Ws, D)` to `(1, 2 + H W, D)`.

    Args:
        table: the position table of a model with patch grid `source`.
        source: `(f_dim, t_dim)` of `table`.
        target: the wanted `(f_dim, t_dim)`.
        rule: see `adapt_grid`.

    Returns:
        float32 table; the cls and distillation rows are copied unchanged.

    Raises:
        ValueError: `table` does not fit `source`, or see `adapt_grid`.
    """
    table = np.asarray(table, dtype=np.float32)
    hs, ws = source
    if table.ndim != 3 or table.shape[0] != 1 or table.shape[1] != _TOKEN_ROWS + hs * ws:
        raise ValueError(
            f"position table must be (1, 2 + {hs}*{ws}, D) = (1, {_TOKEN_ROWS + hs * ws}, D) for "
            f"grid {source}, got {table.shape}"
        )
    d = table.shape[2]
    grid = table[0, _TOKEN_ROWS:].T.reshape(d, hs, ws)  # (D, Hs, Ws), row-major patches
    grid = adapt_grid(grid, target, rule=rule)  # (D, H, W)
    patches = grid.reshape(d, -1).T  # (H W, D), same row-major order
    return np.concatenate([table[0, :_TOKEN_ROWS], patches])[None].astype(np.float32)


def prefix_position_indices(source: ASTConfig, target: ASTConfig) -> NDArray[np.int32]:
    """Rows of `source`'s position table that the "prefix" rule keeps for `target`, in order.

    `table[:, indices]` equals `adapt_position_embeddings(table, ..., rule="prefix")`; inside a
    jitted function this gathers on device instead of storing a table per length.

    Raises:
        ValueError: the configs differ in the frequency grid, or `target` is longer.
    """
    if source.f_dim != target.f_dim or target.t_dim > source.t_dim:
        raise ValueError(
            f"the prefix rule keeps the frequency grid and shortens time: source grid "
            f"{source.f_dim}x{source.t_dim}, target {target.f_dim}x{target.t_dim}"
        )
    fi, ti = np.meshgrid(np.arange(target.f_dim), np.arange(target.t_dim), indexing="ij")
    patches = (_TOKEN_ROWS + fi * source.t_dim + ti).reshape(-1)  # frequency-major
    return np.concatenate([np.arange(_TOKEN_ROWS), patches]).astype(np.int32)


def adapt_params(
    params: Mapping[str, Any], source: ASTConfig, target: ASTConfig, *, rule: PositionRule
) -> dict[str, Any]:
    """Params of `source` adapted to `target`'s patch grid; every other leaf is shared.

    Only the position table depends on the grid: the patch kernel is the same for any input size
    and stride (the original code also keeps it when the strides change).

    Args:
        params: an `ASTForAudioClassification` (`backbone` + `classifier`) or `ASTModel` tree.
        source: the config `params` belong to.
        target: the config to run, e.g. `dataclasses.replace(source, max_length=512)`.
        rule: "audioset", "imagenet" or "prefix" (see the module docstring).

    Returns:
        A new tree of the same structure with the adapted `position_embeddings`.

    Raises:
        ValueError: the configs differ in anything but `max_length`, `num_mel_bins` and the
            strides, or see `adapt_position_embeddings`.
    """
    if _without(source, GRID_FIELDS) != _without(target, GRID_FIELDS):
        raise ValueError(f"only {GRID_FIELDS} may differ between the source and target configs")
    backbone = backbone_params(params)
    embeddings = dict(backbone["embeddings"])
    embeddings["position_embeddings"] = adapt_position_embeddings(
        embeddings["position_embeddings"],
        (source.f_dim, source.t_dim),
        (target.f_dim, target.t_dim),
        rule=rule,
    )
    return with_backbone(params, {**backbone, "embeddings": embeddings})


def _without(config: ASTConfig, names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in vars(config).items() if k not in names}


def select_positions(params: Mapping[str, Any], indices: Any) -> dict[str, Any]:
    """`params` with the position table's rows `indices` only (NumPy or JAX leaves).

    Args:
        params: an `ASTForAudioClassification` or `ASTModel` tree.
        indices: `(N',)` row indices, e.g. `prefix_position_indices(source, target)`.

    Returns:
        A new tree sharing every other leaf; under `jax.jit` the rows are gathered on device.
    """
    backbone = backbone_params(params)
    embeddings = dict(backbone["embeddings"])
    embeddings["position_embeddings"] = embeddings["position_embeddings"][:, indices]
    return with_backbone(params, {**backbone, "embeddings": embeddings})


def bucketed_length(frames: int, config: ASTConfig, *, bucket: int) -> int:
    """The shortest input length that keeps every patch `frames` frames touch, bucketed.

    A clip of `frames` frames padded to `config.max_length` has real content in patch columns
    `0 .. (frames - 1) // time_stride`. The returned length has those columns, rounded up to a
    multiple of `bucket` columns (so few lengths compile) and capped at the model's `t_dim`; at the
    cap it is `config.max_length` itself.

    Args:
        frames: frames of the clip, >= 1.
        config: the model config.
        bucket: patch columns per bucket, >= 1.

    Returns:
        T' with `(T' - patch_size) // time_stride + 1` a multiple of `bucket` (or T' = max_length).

    Raises:
        ValueError: `frames` or `bucket` below 1.
    """
    if frames < 1 or bucket < 1:
        raise ValueError(f"frames and bucket must be >= 1, got frames={frames}, bucket={bucket}")
    columns = (frames - 1) // config.time_stride + 1
    columns = -(-columns // bucket) * bucket
    if columns >= config.t_dim:
        return config.max_length
    return (columns - 1) * config.time_stride + config.patch_size
