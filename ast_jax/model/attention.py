"""Attention kernels: one registry, one signature, and the one rule that picks a kernel.

Every kernel maps ``(q, k, v)``, each ``(B, N, H, K)``, to the context ``(B, N, H, K)`` of softmax
attention with scale ``K ** -0.5`` and no mask (every clip has exactly N tokens):

* ``"xla"``: `jax.nn.dot_product_attention` lowered by XLA; runs on every platform.
* ``"cudnn"``: the same function's fused cuDNN (flash-attention) kernel: NVIDIA GPUs,
  float16/bfloat16 only.
* ``"per_head"``: a loop over (batch, head) pairs with 2-D products (`attention_per_head`), the
  fast form on CPUs for long sequences.
* ``"auto"``: not a kernel but a request for `attention_rule`, the one rule that picks one for a
  platform and a device count. A model built with ``"auto"`` (`attention_kernel`) stages the
  rule's choice for every platform into the program with `jax.lax.platform_dependent`: lowering
  keeps the branch of the platform it lowers for (jit on any backend), and a program lowered for
  several platforms at once (`ast_jax.export`) carries each platform's kernel and picks it when it
  is compiled; the model never reads the tracing host's backend. The pipelines (`AudioClassifier`,
  training) call `resolve_attention`, the same rule for their own devices, before they build a
  model, so the config they run with names the kernel it uses, and a batch split over several
  devices keeps the fused form.

Shape legend: B batch, N tokens, H heads, K head dim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from ast_jax.config import ASTConfig

__all__ = [
    "ATTENTION_KERNELS",
    "PER_HEAD_MIN_TOKENS",
    "PLATFORMS",
    "attention_cudnn",
    "attention_kernel",
    "attention_per_head",
    "attention_rule",
    "resolve_attention",
]

# From this many tokens, `resolve_attention` picks the per-head loop on a CPU. Measured against the
# fused XLA path, 12 heads, batch 8: 1.06x at 146 tokens, 1.16x at 302, 1.28x at 470, 1.5-2x at
# 1214; at 66 tokens (the bundled kws12) the two are level.
PER_HEAD_MIN_TOKENS = 128


def _by_head(x: jax.Array) -> jax.Array:
    """`(B, N, H, K)` -> `(B H, N, K)`: one row per (batch, head) pair."""
    batch, tokens, heads, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch * heads, tokens, head_dim)


def _from_heads(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """`(B H, N, K)` -> `(B, N, H, K)` of ``shape``, the inverse of `_by_head`."""
    batch, tokens, heads, head_dim = shape
    return x.reshape(batch, heads, tokens, head_dim).transpose(0, 2, 1, 3)


def _head_scores(q: jax.Array, k: jax.Array) -> jax.Array:
    """One head's float32 scores `(N, N)` from its `(N, K)` queries and keys."""
    return jnp.dot(q * q.shape[-1] ** -0.5, k.T, preferred_element_type=jnp.float32)


def _per_head_forward(
    q: jax.Array, k: jax.Array, v: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The per-head loop's context `(B, N, H, K)` and each row's softmax statistics, the score
    maximum and the sum of exponentials, each `(B H, N)` float32."""

    def one_head(qkv: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array, jax.Array]:
        q, k, v = qkv  # each (N, K)
        scores = _head_scores(q, k)
        row_max = scores.max(axis=-1)
        weights = jnp.exp(scores - row_max[:, None])  # (N, N)
        row_sum = weights.sum(axis=-1)
        context = jnp.dot(weights.astype(v.dtype), v, preferred_element_type=jnp.float32)
        return (context / row_sum[:, None]).astype(v.dtype), row_max, row_sum  # (N, K), (N,), (N,)

    context, row_max, row_sum = jax.lax.map(one_head, (_by_head(q), _by_head(k), _by_head(v)))
    return _from_heads(context, q.shape), (row_max, row_sum)


@jax.custom_vjp
def attention_per_head(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention one (batch, head) pair at a time: `(B, N, H, K)` -> `(B, N, H, K)`.

    On XLA:CPU a dot with (batch, head) batch dimensions runs far below the GEMM rate and its
    `(B, H, N, N)` scores stream through memory; a loop of 2-D products keeps one head's `(N, N)`
    scores in cache (full-size AST, N = 1214: attention 3-5x faster). Scores, exponentials and
    sums in float32; the division by the row sums comes after the value product, on `(N, K)`
    rather than `(N, N)` values. The loop runs over the batch too, so with a batch sharded over
    several CPU devices, `attention="xla"` keeps the attention local to each device.

    Its gradient keeps nothing of size `(N, N)`: the forward pass saves each row's score maximum
    and exponential sum, and the backward pass recomputes one head's probabilities at a time from
    them (as flash attention does), one extra `(N, K) x (K, N)` product per head. Autodiff of
    the loop would keep every layer's `(B, H, N, N)` probabilities for the backward pass, 1.7 GB
    per example for the full-size model, and the training step would stream them through memory.
    """
    return _per_head_forward(q, k, v)[0]


_Residuals = tuple[jax.Array, jax.Array, jax.Array, jax.Array, tuple[jax.Array, jax.Array]]


def _per_head_fwd(q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, _Residuals]:
    """The context, and what the backward pass needs: the inputs, the context and the row
    statistics."""
    context, statistics = _per_head_forward(q, k, v)
    return context, (q, k, v, context, statistics)


def _per_head_bwd(
    residuals: _Residuals, d_context: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gradients of `attention_per_head` for queries, keys and values, one head at a time.

    With P the probabilities, O the context and dO its gradient: dV = P^T dO, dP = dO V^T, and
    through the softmax dS = P (dP - rowsum(dO O)); dQ = dS K / sqrt(K), dK = dS^T Q / sqrt(K).
    """
    q, k, v, context, (row_max, row_sum) = residuals
    scale = q.shape[-1] ** -0.5

    def one_head(args: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array, jax.Array]:
        q, k, v, o, d_o, row_max, row_sum = args  # (N, K) x 5, (N,) x 2
        probs = jnp.exp(_head_scores(q, k) - row_max[:, None]) / row_sum[:, None]  # (N, N) f32
        d_o32 = d_o.astype(jnp.float32)
        d_v = jnp.dot(probs.T, d_o32)
        d_probs = jnp.dot(d_o32, v.astype(jnp.float32).T)
        row_dot = (d_o32 * o.astype(jnp.float32)).sum(axis=-1)  # rowsum(dO O), (N,)
        d_scores = probs * (d_probs - row_dot[:, None]) * scale
        d_q = jnp.dot(d_scores, k.astype(jnp.float32))
        d_k = jnp.dot(d_scores.T, q.astype(jnp.float32))
        return d_q.astype(q.dtype), d_k.astype(k.dtype), d_v.astype(v.dtype)

    heads = tuple(_by_head(x) for x in (q, k, v, context, d_context))
    d_q, d_k, d_v = jax.lax.map(one_head, (*heads, row_max, row_sum))
    return tuple(_from_heads(d, q.shape) for d in (d_q, d_k, d_v))


attention_per_head.defvjp(_per_head_fwd, _per_head_bwd)


def attention_cudnn(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """`jax.nn.dot_product_attention`'s cuDNN flash-attention kernel: `(B, N, H, K)` -> same.

    JAX builds this kernel's call from the local cuDNN's version while it traces, so a program
    with it can only be traced (jit, export) on a host with a CUDA GPU and JAX's CUDA plugin.

    Raises:
      RuntimeError: no cuDNN on this host, naming the alternatives.
    """
    try:
        return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
    except RuntimeError as error:
        if "cuDNN is not detected" not in str(error):
            raise
        raise RuntimeError(
            'attention="cudnn" can only be traced on a host with a CUDA GPU (JAX asks the local '
            'cuDNN for its version while tracing it); use attention="auto", which lowers to the '
            "fused XLA kernel on GPUs and TPUs and to the per-head loop on CPUs, or trace "
            "(export) on a GPU host"
        ) from error


AttentionKernel = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
ATTENTION_KERNELS: dict[str, AttentionKernel] = {
    "xla": partial(jax.nn.dot_product_attention, implementation="xla"),
    "cudnn": attention_cudnn,
    "per_head": attention_per_head,
}
# The platforms `jax.lax.platform_dependent` tells apart; "auto" stages a kernel for each.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_PLATFORM_NAMES = {"gpu": "cuda"}  # jax.default_backend()'s name for either GPU platform


def attention_rule(config: ASTConfig, platform: str, *, devices: int = 1) -> str:
    """The kernel ``"auto"`` stands for on ``platform`` with a batch split over ``devices``.

    ``"per_head"`` on a CPU when the batch stays on one device and a clip has at least
    `PER_HEAD_MIN_TOKENS` tokens; ``"xla"`` everywhere else. With a batch split over several
    devices the per-head loop (which also runs over the batch) would gather every device's rows
    onto each device, so the fused form is kept there. This is the only place the choice is made:
    `resolve_attention` (the pipelines) and `attention_kernel` (the model, per platform at
    lowering) both ask it.

    Args:
      config: the model config; its ``seq_len`` is the token count.
      platform: ``"cpu"``, ``"cuda"``/``"rocm"``/``"gpu"`` or ``"tpu"``.
      devices: how many devices one batch is split over.
    """
    if platform == "cpu" and devices == 1 and config.seq_len >= PER_HEAD_MIN_TOKENS:
        return "per_head"
    return "xla"


def attention_kernel(config: ASTConfig) -> AttentionKernel:
    """The attention the model runs for ``config.attention``.

    An explicit choice is its registry kernel. ``"auto"`` is `attention_rule` for one device on
    each of `PLATFORMS`: one kernel if the rule gives the same everywhere, else a
    `jax.lax.platform_dependent` over the kernels, which lowering resolves for the platform it
    lowers for (jit) or keeps as a switch on the platform for a multi-platform export, taken when
    the program is compiled.
    """
    if config.attention != "auto":
        return ATTENTION_KERNELS[config.attention]
    choices = {platform: attention_rule(config, platform) for platform in PLATFORMS}
    if len(set(choices.values())) == 1:
        return ATTENTION_KERNELS[choices["cpu"]]
    branches = {platform: ATTENTION_KERNELS[name] for platform, name in choices.items()}

    def per_platform(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        return jax.lax.platform_dependent(q, k, v, default=ATTENTION_KERNELS["xla"], **branches)

    return per_platform


def resolve_attention(
    config: ASTConfig, *, platform: str | None = None, mesh: Mesh | None = None
) -> ASTConfig:
    """``config`` with ``attention="auto"`` replaced by the kernel to run; other choices are kept.

    The pipelines' resolution, visible in the config they run with: `attention_rule` for the
    platform and the device count of ``mesh``.

    Args:
      config: the model config; its ``seq_len`` is the token count.
      platform: the platform the program will run on (``"cpu"``, ``"gpu"``/``"cuda"``,
        ``"tpu"``); None for the mesh's, else JAX's default backend.
      mesh: the devices a batch is split over; None for one device.

    Returns:
      ``config`` itself when nothing changes, else a copy with the chosen ``attention``.
    """
    if config.attention != "auto":
        return config
    if platform is None:
        platform = jax.default_backend() if mesh is None else mesh.devices.flat[0].platform
    platform = _PLATFORM_NAMES.get(platform, platform)
    devices = 1 if mesh is None else mesh.size
    return dataclasses.replace(config, attention=attention_rule(config, platform, devices=devices))
