"""StableHLO artifacts: `jax.export` of the serving function for several platforms at once.

The artifact is ``exported.serialize()``: a StableHLO module with the parameters baked in as
constants, lowered for each requested platform (default cpu, cuda and tpu) with a symbolic batch
dimension. Any JAX of a compatible version loads it with ``jax.export.deserialize(data)`` and runs
it with ``.call(...)`` on whichever of those platforms its devices are: neither ast_jax nor Flax is
needed there.

What differs per platform is decided inside the program, not at export: ``attention="auto"``
stages `ast_jax.model.attention.attention_rule`'s kernel for each platform
(`jax.lax.platform_dependent`), so the CPU program runs the per-head loop (for long sequences) and
the GPU and TPU programs the fused kernel, whatever host exported it. float32 models ask for
``Precision.HIGHEST`` on every dot (`ast_jax.model.layers.matmul_precision`), so a TPU computes
them in float32 rather than in bfloat16 passes.

Shape legend: B batch, C classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax

from ast_jax.config import ASTConfig
from ast_jax.export.serving import BATCH, Input, input_shapes, serving_function
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.model.attention import PLATFORMS, attention_rule

__all__ = ["DEFAULT_PLATFORMS", "attention_by_platform", "check_platforms", "export_stablehlo"]

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")
# The custom call cuDNN's fused attention lowers to (forward, no bias, mask or dropout). JAX gives
# it no compatibility guarantee, so an artifact with it runs only with a matching JAX and cuDNN.
_CUDNN_TARGETS = ("__cudnn$fmhaSoftmax",)


def check_platforms(platforms: Sequence[str], config: ASTConfig) -> tuple[str, ...]:
    """``platforms`` as a tuple, checked: known names, no repeats, and cuDNN attention only for
    ``"cuda"``.

    Raises:
      ValueError: an unknown or repeated platform, none at all, or ``attention="cudnn"`` for a
        platform other than cuda.
    """
    platforms = tuple(platforms)
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms or len(set(platforms)) != len(platforms):
        raise ValueError(
            f"platforms must be distinct names from {PLATFORMS}, got {list(platforms)}"
        )
    others = [p for p in platforms if p != "cuda"]
    if config.attention == "cudnn" and others:
        raise ValueError(
            f'attention="cudnn" runs only on NVIDIA GPUs, not on {", ".join(others)}: export it '
            'for the cuda platform alone, or use attention="auto" (the per-head loop on CPUs, '
            "the fused XLA kernel on GPUs and TPUs)"
        )
    return platforms


def attention_by_platform(config: ASTConfig, platforms: Sequence[str]) -> dict[str, str]:
    """The kernel each platform's program runs (``"auto"`` through `attention_rule`)."""
    return {
        p: attention_rule(config, p) if config.attention == "auto" else config.attention
        for p in platforms
    }


def export_stablehlo(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    *,
    input: Input = "waveform",
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    dft: Literal["fft", "matmul"] = "fft",
) -> jax.export.Exported:
    """The serving function (`ast_jax.export.serving`) exported for ``platforms``.

    Args:
      config: the model config (its ``dtype`` and ``attention`` are exported as they are).
      params: the `ASTForAudioClassification` params, baked in.
      extractor: the feature extractor the waveform input goes through.
      input: ``"waveform"`` (inputs ``waveforms (B, S)``, ``lengths (B,)``) or ``"features"``.
      platforms: any of ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``.
      dft: the spectrum's DFT: ``"fft"``, as ast_jax computes it.

    Returns:
      The `jax.export.Exported`; ``.serialize()`` gives the artifact's bytes.

    Raises:
      ValueError: bad platforms (`check_platforms`), input or extractor.
      RuntimeError: ``attention="cudnn"`` on a host without a CUDA GPU (JAX traces that kernel
        with the local cuDNN).
    """
    platforms = check_platforms(platforms, config)
    function = serving_function(config, params, extractor, input=input, dft=dft)
    (batch,) = jax.export.symbolic_shape(BATCH)
    specs = [
        jax.ShapeDtypeStruct(tuple(batch if d == BATCH else d for d in shape), dtype)
        for shape, dtype in input_shapes(config, extractor, input).values()
    ]
    disabled = []
    if config.attention == "cudnn":
        disabled = [jax.export.DisabledSafetyCheck.custom_call(t) for t in _CUDNN_TARGETS]
    return jax.export.export(jax.jit(function), platforms=platforms, disabled_checks=disabled)(
        *specs
    )
