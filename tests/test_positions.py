"""Position-table adaptation: PyTorch's bilinear interpolate, the original cut rules on the grids of
the published configurations, the grid layout, the prefix rule, and
`load_pretrained(max_length=...)` (docs/checkpoints.md, positions)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ast_jax import ASTConfig, ASTModel, load_pretrained
from ast_jax.model.positions import (
    adapt_grid,
    adapt_params,
    adapt_position_embeddings,
    bilinear_resize,
    bucketed_length,
    prefix_position_indices,
)

# Same float32 source indices and weights as torch; the blend's operation order may differ, a few
# float32 ulps of the O(1) grid values.
RESIZE_ATOL = 1e-6


def _torch_resize(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The original code's call: `interpolate(..., mode="bilinear")` (align_corners=False)."""
    return F.interpolate(torch.from_numpy(grid)[None], size=size, mode="bilinear")[0].numpy()


def _index_grid(d: int, rows: int, cols: int) -> np.ndarray:
    """`(D, rows, cols)` grid whose values name their position: 1000 * row + col (+ channel)."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (1000.0 * r + c + np.arange(d)[:, None, None] * 1e5).astype(np.float32)


@pytest.mark.parametrize(
    "source, size",
    [((12, 101), (12, 512)), ((24, 24), (24, 101)), ((24, 101), (30, 101)), ((7, 9), (3, 4))],
)
def test_bilinear_resize_matches_torch_interpolate(source, size):
    """Upsampling as the original code does, and downsampling (where antialiasing would differ)."""
    grid = np.random.default_rng(0).standard_normal((5, *source)).astype(np.float32)
    np.testing.assert_allclose(
        bilinear_resize(grid, size), _torch_resize(grid, size), rtol=0, atol=RESIZE_ATOL
    )


@pytest.mark.parametrize(
    "t_dim, columns",
    [(50, (25, 75)), (9, (46, 55)), (101, (0, 101))],  # ESC-50, T=100, identity
)
def test_audioset_rule_cuts_time_from_the_middle(t_dim, columns):
    grid = _index_grid(3, 12, 101)
    np.testing.assert_array_equal(
        adapt_grid(grid, (12, t_dim), rule="audioset"), grid[:, :, slice(*columns)]
    )


def test_audioset_rule_resizes_longer_and_higher_grids_like_torch():
    grid = np.random.default_rng(1).standard_normal((4, 12, 101)).astype(np.float32)
    longer = _torch_resize(grid, (12, 120))
    np.testing.assert_allclose(
        adapt_grid(grid, (12, 120), rule="audioset"), longer, rtol=0, atol=RESIZE_ATOL
    )
    # f_dim > 12 after the time cut: resize (12, 50) -> (14, 50), as the original's second call.
    cut = grid[:, :, 25:75]
    np.testing.assert_allclose(
        adapt_grid(grid, (14, 50), rule="audioset"),
        _torch_resize(cut, (14, 50)),
        rtol=0,
        atol=RESIZE_ATOL,
    )
    # f_dim < 12: rows [6 - 5, 6 - 5 + 10).
    np.testing.assert_array_equal(adapt_grid(grid, (10, 50), rule="audioset"), grid[:, 1:11, 25:75])


@pytest.mark.parametrize(
    "f_dim, t_dim, rows, columns",
    [
        (12, 12, (6, 18), (6, 18)),  # Speech Commands T=128, 10/10
        (10, 85, (7, 17), None),  # 12/12: rows 7..16, time upsampled 24 -> 85
        (9, 73, (8, 17), None),  # 14/14: rows 8..16
        (8, 64, (8, 16), None),  # 16/16: rows 8..15
        (12, 101, (6, 18), None),  # AudioSet 10/10: rows 6..17, time upsampled 24 -> 101
        (24, 24, (0, 24), (0, 24)),  # equality: the <= cut is the identity
    ],
)
def test_imagenet_rule_on_the_spec_examples(f_dim, t_dim, rows, columns):
    grid = np.random.default_rng(2).standard_normal((3, 24, 24)).astype(np.float32)
    timed = grid[:, :, slice(*columns)] if columns else _torch_resize(grid, (24, t_dim))
    np.testing.assert_allclose(
        adapt_grid(grid, (f_dim, t_dim), rule="imagenet"),
        timed[:, slice(*rows), :],
        rtol=0,
        atol=RESIZE_ATOL,
    )


def _original_code(table: np.ndarray, source: tuple[int, int], f_dim: int, t_dim: int):
    """The original AudioSet branch of `ASTModel.__init__`, restated in torch (cut case)."""
    pos = torch.from_numpy(table)
    d = pos.shape[-1]
    hs, ws = source
    new = pos[:, 2:, :].reshape(1, hs * ws, d).transpose(1, 2).reshape(1, d, hs, ws)
    new = new[:, :, :, ws // 2 - t_dim // 2 : ws // 2 - t_dim // 2 + t_dim]
    new = new[:, :, hs // 2 - f_dim // 2 : hs // 2 - f_dim // 2 + f_dim, :]
    new = new.reshape(1, d, f_dim * t_dim).transpose(1, 2)
    return torch.cat([pos[:, :2, :], new], dim=1).numpy()


def test_table_layout_and_token_rows_match_the_original_code():
    table = np.random.default_rng(3).standard_normal((1, 2 + 12 * 101, 6)).astype(np.float32)
    adapted = adapt_position_embeddings(table, (12, 101), (10, 50), rule="audioset")
    np.testing.assert_array_equal(adapted, _original_code(table, (12, 101), 10, 50))


def test_prefix_rule_keeps_the_first_columns():
    table = np.random.default_rng(4).standard_normal((1, 2 + 12 * 101, 4)).astype(np.float32)
    short = dataclasses.replace(ASTConfig(), max_length=306)  # t_dim 30
    adapted = adapt_position_embeddings(table, (12, 101), (12, 30), rule="prefix")
    np.testing.assert_array_equal(adapted, table[:, prefix_position_indices(ASTConfig(), short)])
    grid = adapted[0, 2:].reshape(12, 30, 4)
    np.testing.assert_array_equal(grid, table[0, 2:].reshape(12, 101, 4)[:, :30])


def test_prefix_positions_put_a_short_clip_where_padding_puts_it(tiny_config, tiny_params):
    """Embeddings of an unpadded short clip = the padded clip's embeddings at the kept tokens."""
    short = dataclasses.replace(tiny_config, max_length=56)  # t_dim 5 of 12
    params = tiny_params()["backbone"]
    params["embeddings"]["position_embeddings"] = (
        np.random.default_rng(5).standard_normal((1, tiny_config.seq_len, 32)).astype(np.float32)
    )
    x = np.random.default_rng(6).standard_normal((2, 128, 128)).astype(np.float32)
    x[:, 56:] = -1.0  # padding after the clip
    padded = ASTModel(tiny_config).apply({"params": params}, x, output_hidden_states=True)
    adapted = adapt_params(params, tiny_config, short, rule="prefix")
    unpadded = ASTModel(short).apply({"params": adapted}, x[:, :56], output_hidden_states=True)
    kept = prefix_position_indices(tiny_config, short)
    np.testing.assert_allclose(
        unpadded.hidden_states[0], padded.hidden_states[0][:, kept], rtol=0, atol=1e-6
    )


def test_load_pretrained_adapts_to_another_length(tiny_config, tiny_params, tiny_checkpoint):
    config, params = load_pretrained(tiny_checkpoint, max_length=64)
    assert config == dataclasses.replace(tiny_config, max_length=64)
    table = tiny_params()["backbone"]["embeddings"]["position_embeddings"]
    expected = adapt_position_embeddings(
        table, (tiny_config.f_dim, tiny_config.t_dim), (config.f_dim, config.t_dim), rule="audioset"
    )
    got = params["backbone"]["embeddings"]["position_embeddings"]
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (1, config.seq_len, 32)
    _, longer = load_pretrained(
        tiny_checkpoint, max_length=256, num_mel_bins=160, positions="imagenet"
    )
    assert longer["backbone"]["embeddings"]["position_embeddings"].shape[1] == 2 + 15 * 25


@pytest.mark.parametrize(
    "frames, bucket, length",
    [
        (100, 10, 106),
        (101, 10, 206),
        (1, 1, 16),
        (98, 4, 126),
        (1000, 10, 1006),
        (1001, 10, 1024),
        (1024, 1, 1024),
    ],
)
def test_bucketed_length(frames, bucket, length):
    config = ASTConfig()
    assert bucketed_length(frames, config, bucket=bucket) == length
    t_dim = dataclasses.replace(config, max_length=length).t_dim
    assert t_dim % bucket == 0 or length == config.max_length
    assert t_dim >= min((frames - 1) // 10 + 1, config.t_dim)


def test_errors_name_the_value(tiny_config, tiny_params):
    grid = np.zeros((2, 12, 101), np.float32)
    with pytest.raises(ValueError, match="rule must be one of"):
        adapt_grid(grid, (12, 50), rule="nearest")
    with pytest.raises(ValueError, match="prefix rule keeps the frequency grid"):
        adapt_grid(grid, (12, 120), rule="prefix")
    with pytest.raises(ValueError, match=r"\(1, 1214, D\)"):
        adapt_position_embeddings(np.zeros((1, 1000, 4)), (12, 101), (12, 50), rule="audioset")
    with pytest.raises(ValueError, match=r"only .* may differ"):
        adapt_params(
            tiny_params(),
            tiny_config,
            dataclasses.replace(tiny_config, hidden_size=64),
            rule="audioset",
        )
    with pytest.raises(ValueError, match="size must be two ints"):
        bilinear_resize(grid, (0, 4))
    with pytest.raises(ValueError, match=r"size must be two ints >= 1, got \(12, 0\)"):
        adapt_grid(grid, (12, 0), rule="audioset")
    with pytest.raises(ValueError, match="frames and bucket must be >= 1"):
        bucketed_length(0, ASTConfig(), bucket=10)
