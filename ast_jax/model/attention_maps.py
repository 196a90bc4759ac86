"""Attention maps: per-layer attention probabilities and attention rollout to a patch heatmap.

`explain` runs the classifier with `output_attentions=True`, which computes every layer's softmax
explicitly (the fast path keeps the fused kernel and never materialises `(B, H, N, N)`).
`attention_rollout` follows Abnar & Zuidema (2020): average the heads, add the identity for the
residual connection, renormalise the rows, and multiply the layers from the first to the last.
`rollout_heatmap` reads the rows of the cls and distillation tokens (the two tokens the classifier
pools) at the patch columns and lays them out as the `(f_dim, t_dim)` patch grid.

Shape legend: B batch, T frames, F mel bins, L layers, H heads, N tokens (patches + 2), C classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ast_jax.config import ASTConfig
from ast_jax.model.modules import ASTForAudioClassification

__all__ = ["attention_rollout", "explain", "rollout_heatmap"]

_TOKEN_ROWS = 2  # cls and distillation


def attention_rollout(attentions: Sequence[jax.Array] | jax.Array) -> jax.Array:
    """Attention rollout over layers (Abnar & Zuidema, 2020).

    Args:
        attentions: L arrays `(B, H, N, N)` (or one `(L, B, H, N, N)` array) of softmax
            probabilities, rows queries and columns keys, first layer first.

    Returns:
        `(B, N, N)` float32: row i is how much each input token flows into token i's output.

    Raises:
        ValueError: no layers, or arrays that are not `(B, H, N, N)` with square token axes.
    """
    stacked = jnp.asarray(attentions, dtype=jnp.float32)
    if stacked.ndim != 5 or stacked.shape[0] == 0 or stacked.shape[-1] != stacked.shape[-2]:
        raise ValueError(
            f"attentions must be L >= 1 arrays (B, H, N, N), got shape {tuple(stacked.shape)}"
        )
    tokens = stacked.shape[-1]
    mixed = stacked.mean(axis=2) + jnp.eye(tokens)  # (L, B, N, N): heads averaged, + residual
    mixed = mixed / mixed.sum(axis=-1, keepdims=True)

    def step(rollout: jax.Array, layer: jax.Array) -> tuple[jax.Array, None]:
        return jnp.einsum("bij,bjk->bik", layer, rollout), None  # later layers on the left

    rollout, _ = jax.lax.scan(step, mixed[0], mixed[1:])
    return rollout


def rollout_heatmap(rollout: jax.Array, config: ASTConfig) -> jax.Array:
    """The cls and distillation rows of a rollout as a frequency x time patch map.

    Args:
        rollout: `(B, N, N)` from `attention_rollout`, N = `config.seq_len`.
        config: the model config (patch grid `f_dim` x `t_dim`).

    Returns:
        `(B, f_dim, t_dim)` float32, the mean of the two rows over the patch columns, scaled so
        each map sums to 1. Row 0 is the lowest mel band, column 0 the first frames.

    Raises:
        ValueError: `rollout` does not have `config.seq_len` tokens.
    """
    if rollout.ndim != 3 or rollout.shape[1:] != (config.seq_len, config.seq_len):
        raise ValueError(
            f"rollout must be (B, {config.seq_len}, {config.seq_len}) for this config, got "
            f"{tuple(rollout.shape)}"
        )
    pooled = rollout[:, :_TOKEN_ROWS, _TOKEN_ROWS:].mean(axis=1)  # (B, N - 2)
    pooled = pooled / pooled.sum(axis=-1, keepdims=True)
    # Tokens are frequency-major (patch fi * t_dim + ti), so a row-major reshape is the grid.
    return pooled.reshape(-1, config.f_dim, config.t_dim)


def explain(
    params: Mapping[str, Any], config: ASTConfig, input_values: jax.typing.ArrayLike
) -> dict[str, jax.Array]:
    """Logits, attention probabilities and the rollout heatmap of a classifier; the caller jits.

    Args:
        params: `ASTForAudioClassification` params for `config`.
        config: the model config (static under `jax.jit`).
        input_values: `(B, T, F)` normalised log-mel features.

    Returns:
        `{"logits": (B, C), "attentions": (L, B, H, N, N), "heatmap": (B, f_dim, t_dim)}`, float32.
    """
    out = ASTForAudioClassification(config).apply(
        {"params": params}, input_values, output_attentions=True
    )
    attentions = jnp.stack(out.attentions)  # (L, B, H, N, N)
    heatmap = rollout_heatmap(attention_rollout(attentions), config)
    return {"logits": out.logits, "attentions": attentions, "heatmap": heatmap}
