"""Flax Linen building blocks of the Audio Spectrogram Transformer (docs/parity.md).

Shape legend: B batch, T frames, F mel bins, N tokens (patches + 2), D hidden, H heads, K head dim,
I intermediate (MLP) width, C classes.

Parity traps named where they bite:
* conv layout: HF swaps the input to frequency-major before the conv, so the tokens are ordered
  `fi * t_dim + ti`; we feed `(B, F, T, 1)` so the same order falls out of a row-major reshape.
* exact GELU: HF's "gelu" is the erf form; `jax.nn.gelu` defaults to the tanh approximation.
* LayerNorm: HF uses eps 1e-12 (Flax default 1e-6) and the two-pass variance (Flax's fast
  E[x^2] - E[x]^2 loses float32 precision), hence `use_fast_variance=False`.
* matmul precision: in float32 mode every dot and the patch convolution ask for
  `Precision.HIGHEST` (`matmul_precision`); a TPU's default (and a GPU's, TF32) would otherwise
  round float32 operands to bfloat16 passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from ast_jax.config import ASTConfig
from ast_jax.model.attention import attention_kernel

__all__ = [
    "ASTEmbeddings",
    "ASTLayer",
    "ASTMLPHead",
    "ASTSelfAttention",
    "activation",
    "compute_dtype",
    "layer_norm",
    "matmul_precision",
]

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # Parity trap: torch's GELU is exact (erf); JAX's default is the tanh approximation.
    "gelu": partial(jax.nn.gelu, approximate=False),
    "gelu_new": partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "selu": jax.nn.selu,
}
# HF draws Linear/Conv kernels from a normal of std `initializer_range` cut at +-2.0 *absolute*
# (practically uncut); biases, tokens and position table are zero. Init is no parity target.
_ZEROS = nn.initializers.zeros


def compute_dtype(config: ASTConfig) -> jnp.dtype:
    """The JAX dtype named by `config.dtype`."""
    return _DTYPES[config.dtype]


def matmul_precision(config: ASTConfig) -> jax.lax.Precision | None:
    """The precision every matmul and convolution of the model asks for.

    float32 (the parity mode) means float32 on every backend: ``Precision.HIGHEST``, which XLA:CPU
    computes as it always does and TPUs and GPUs as full float32 (a TPU's default precision takes
    bfloat16 passes, a GPU's may take TF32). bfloat16 and float16 keep the backend's default
    (None): their operands are already that narrow.
    """
    return jax.lax.Precision.HIGHEST if config.dtype == "float32" else None


def activation(name: str, dtype: jnp.dtype = jnp.float32) -> Callable[[jax.Array], jax.Array]:
    """The activation HF calls `name` (see `ASTConfig.hidden_act`), for compute in `dtype`.

    In bfloat16, exact GELU takes its tanh form: the two differ by at most 4.7e-4 (absolute, at
    x = 2.68, where GELU is 2.67), ten times below bfloat16's rounding of the result, and XLA
    fuses the tanh form into the GPU matmul's epilogue (measured +20% full-model throughput on an
    H200). float32 and float16 keep the exact form.
    """
    if name == "gelu" and dtype == jnp.bfloat16:
        return _ACTIVATIONS["gelu_new"]
    return _ACTIVATIONS[name]


def _kernel_init(config: ASTConfig) -> nn.initializers.Initializer:
    return nn.initializers.normal(stddev=config.initializer_range)


def layer_norm(
    config: ASTConfig, name: str, dtype: jnp.dtype | None = None, *, epsilon: float | None = None
) -> nn.LayerNorm:
    """A LayerNorm matching torch's: config eps, two-pass variance, float32 statistics.

    Flax computes the statistics in at least float32 whatever `dtype` is; `dtype` sets the output.
    `epsilon` replaces `config.layer_norm_eps` (the head's norm passes its own).
    """
    return nn.LayerNorm(
        # Parity trap: HF's 1e-12 (timm's 1e-6 / 1e-5 in timm-exact mode), not Flax's 1e-6.
        epsilon=config.layer_norm_eps if epsilon is None else epsilon,
        use_fast_variance=False,  # Parity trap: two-pass variance as torch.
        dtype=compute_dtype(config) if dtype is None else dtype,
        param_dtype=jnp.float32,
        name=name,
    )


def _kernel_precision(config: ASTConfig) -> contextlib.AbstractContextManager:
    """`matmul_precision` for the dots an attention kernel traces inside."""
    if matmul_precision(config) is None:
        return contextlib.nullcontext()
    return jax.default_matmul_precision("highest")


class ASTEmbeddings(nn.Module):
    """Patch embedding + cls/distillation tokens + position table: `(B, T, F)` -> `(B, N, D)`."""

    config: ASTConfig

    @nn.compact
    def __call__(self, input_values: jax.Array, *, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        dtype = compute_dtype(cfg)
        d = cfg.hidden_size
        # Parity trap (conv layout): frequency is the conv's height, time its width.
        x = jnp.swapaxes(input_values, 1, 2)[..., None]  # (B, F, T, 1)
        x = nn.Conv(
            d,
            kernel_size=(cfg.patch_size, cfg.patch_size),
            strides=(cfg.frequency_stride, cfg.time_stride),
            padding="VALID",
            dtype=dtype,
            precision=matmul_precision(cfg),
            param_dtype=jnp.float32,
            kernel_init=_kernel_init(cfg),
            name="patch_projection",
        )(x)  # (B, f_dim, t_dim, D)
        batch = x.shape[0]
        patches = x.reshape(batch, cfg.num_patches, d)  # (B, N-2, D), frequency-major
        cls_token = self.param("cls_token", _ZEROS, (1, 1, d), jnp.float32)
        dist_token = self.param("distillation_token", _ZEROS, (1, 1, d), jnp.float32)
        position = self.param("position_embeddings", _ZEROS, (1, cfg.seq_len, d), jnp.float32)
        tokens = jnp.broadcast_to(jnp.concatenate([cls_token, dist_token], axis=1), (batch, 2, d))
        x = jnp.concatenate([tokens.astype(dtype), patches], axis=1)  # (B, N, D)
        x = x + position.astype(dtype)
        return nn.Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)


class ASTSelfAttention(nn.Module):
    """Multi-head self-attention with one fused `qkv` projection: `(B, N, D)` -> `(B, N, D)`.

    The `qkv` kernel is `(D, 3D)`; its output is `[q | k | v]`, each head-major (head h owns
    features `[h K, (h + 1) K)`), as the original timm checkpoint stores it.
    """

    config: ASTConfig

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool = True, output_attentions: bool = False
    ) -> tuple[jax.Array, jax.Array | None]:
        """Returns the attention output `(B, N, D)` and, with `output_attentions`, the float32
        probabilities `(B, H, N, N)` (computed explicitly; the fused kernel does not expose them).
        """
        cfg = self.config
        dtype = compute_dtype(cfg)
        batch, tokens, d = x.shape
        qkv = nn.Dense(
            3 * d,
            use_bias=cfg.qkv_bias,
            dtype=dtype,
            precision=matmul_precision(cfg),
            param_dtype=jnp.float32,
            kernel_init=_kernel_init(cfg),
            name="qkv",
        )(x)  # (B, N, 3D)
        # Split before reshaping: slicing a (B, N, 3, H, K) view instead doubles this module's
        # gradient time on XLA:CPU (kws12 shapes, batch 64: 23 ms vs 12; same values).
        heads = (batch, tokens, cfg.num_attention_heads, cfg.head_dim)
        q, k, v = (part.reshape(heads) for part in jnp.split(qkv, 3, axis=-1))  # each (B, N, H, K)
        dropout = not deterministic and cfg.attention_probs_dropout_prob > 0.0
        probs = None
        # `dot_product_attention` asks for an F16_F16_F32 dot for float16, which XLA:CPU rejects.
        if dropout or output_attentions or dtype == jnp.float16:
            context, probs = self._explicit_attention(q, k, v, deterministic=not dropout)
        else:
            # "auto": each platform's kernel, chosen when the program is lowered for it. The
            # kernels take no precision argument: their dots read it from the context.
            with _kernel_precision(cfg):
                context = attention_kernel(cfg)(q, k, v)  # softmax in float32 inside
        context = context.reshape(batch, tokens, d)  # heads concatenated head-major
        out = nn.Dense(
            d,
            dtype=dtype,
            param_dtype=jnp.float32,
            precision=matmul_precision(cfg),
            kernel_init=_kernel_init(cfg),
            name="out",
        )(context)
        return out, probs if output_attentions else None

    def _explicit_attention(
        self, q: jax.Array, k: jax.Array, v: jax.Array, *, deterministic: bool
    ) -> tuple[jax.Array, jax.Array]:
        """Softmax attention written out, with dropout on the probabilities (which
        `dot_product_attention` lacks): `(B, N, H, K)` -> context `(B, N, H, K)` and the float32
        probabilities before dropout `(B, H, N, N)`."""
        precision = matmul_precision(self.config)
        scores = jnp.einsum(
            "bqhk,bshk->bhqs", q, k, precision=precision, preferred_element_type=jnp.float32
        )
        probs = jax.nn.softmax(scores * self.config.head_dim**-0.5, axis=-1)  # (B, H, N, N) f32
        dropped = nn.Dropout(self.config.attention_probs_dropout_prob)(probs, deterministic)
        context = jnp.einsum(
            "bhqs,bshk->bqhk", dropped.astype(v.dtype), v, precision=precision
        )  # (B, N, H, K)
        return context, probs


class ASTMLP(nn.Module):
    """Position-wise MLP `fc1 -> act -> fc2`: `(B, N, D)` -> `(B, N, D)`."""

    config: ASTConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        dense = partial(
            nn.Dense,
            dtype=compute_dtype(cfg),
            param_dtype=jnp.float32,
            precision=matmul_precision(cfg),
            kernel_init=_kernel_init(cfg),
        )
        x = dense(cfg.intermediate_size, name="fc1")(x)  # (B, N, I)
        x = activation(cfg.hidden_act, compute_dtype(cfg))(x)
        return dense(cfg.hidden_size, name="fc2")(x)  # (B, N, D)


class ASTLayer(nn.Module):
    """Pre-LayerNorm transformer block: `x + attn(LN(x))`, then `h + mlp(LN(h))`; `(B, N, D)`."""

    config: ASTConfig

    @nn.compact
    def __call__(
        self, x: jax.Array, *, deterministic: bool = True, output_attentions: bool = False
    ) -> tuple[jax.Array, jax.Array | None]:
        """Returns the block output `(B, N, D)` and the attention probabilities `(B, H, N, N)`
        (None unless `output_attentions`)."""
        cfg = self.config
        dropout = nn.Dropout(cfg.hidden_dropout_prob, deterministic=deterministic)
        a = layer_norm(cfg, "layernorm_before")(x)
        a, probs = ASTSelfAttention(cfg, name="attention")(
            a, deterministic=deterministic, output_attentions=output_attentions
        )
        h = x + dropout(a)
        y = layer_norm(cfg, "layernorm_after")(h)
        y = ASTMLP(cfg, name="mlp")(y)
        return h + dropout(y), probs


class ASTMLPHead(nn.Module):
    """Classifier head `LN -> Dense` in float32: `(B, D)` -> `(B, C)`.

    With `num_labels == 0` the Dense is an identity (as HF): the output is the normalised `(B, D)`.
    """

    config: ASTConfig

    @nn.compact
    def __call__(self, pooled: jax.Array) -> jax.Array:
        cfg = self.config
        x = layer_norm(cfg, "layernorm", dtype=jnp.float32, epsilon=cfg.classifier_layer_norm_eps)(
            pooled.astype(jnp.float32)
        )
        if cfg.num_labels == 0:
            return x
        return nn.Dense(
            cfg.num_labels,
            dtype=jnp.float32,
            param_dtype=jnp.float32,
            precision=matmul_precision(cfg),
            kernel_init=_kernel_init(cfg),
            name="dense",
        )(x)
