"""ONNX artifacts: the serving function converted by jax2onnx, for onnxruntime.

Needs the ``export`` extra (``pip install 'ast-jax[export]'``: jax2onnx, onnxruntime). The graph
has the same inputs and output as the StableHLO artifact (`ast_jax.export.serving`), a dynamic
``batch`` dimension, and the parameters as initializers. Two things differ from the JAX program,
both because of what converts:

* the spectrum's DFT is two matrix products with cosine and sine tables (``dft="matmul"``): the
  converter's FFT takes the magnitude as an element-wise ``Abs`` over the real/imaginary pairs.
  The power spectrum is ``re**2 + im**2``, as everywhere in ast_jax.
* ``attention="auto"`` is decided when the graph is built, for onnxruntime's CPU provider:
  `attention_rule` for ``"cpu"``, so long sequences get the per-head loop (an ONNX ``Loop`` of 2-D
  ``MatMul``s; onnxruntime runs the fused form's 5-D ``Einsum`` about twice as slow on the
  full-size model) and short ones the fused form.

Precision is float32 (onnxruntime's CPU kernels compute float32 products in float32) or, with a
float16 config, float16 matrix products with float32 LayerNorm, softmax and logits; bfloat16 is
refused (onnxruntime's CPU provider has no bfloat16 kernels for these operators).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jax

from ast_jax.config import ASTConfig
from ast_jax.export.serving import BATCH, Input, input_shapes, serving_function
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.model.attention import attention_rule

if TYPE_CHECKING:
    import onnx

__all__ = ["OPSET", "export_onnx", "onnx_config"]

# ONNX opset of the graph (onnxruntime 1.20 and newer run it).
OPSET = 21
_INSTALL = "ONNX export needs jax2onnx and onnxruntime: pip install 'ast-jax[export]'"


def onnx_config(config: ASTConfig) -> ASTConfig:
    """The config an ONNX graph is built with: ``"auto"`` attention resolved for a CPU.

    Raises:
      ValueError: ``attention="cudnn"`` (a CUDA kernel) or ``dtype="bfloat16"``.
    """
    if config.attention == "cudnn":
        raise ValueError(
            'attention="cudnn" is a CUDA kernel and has no ONNX form; export with attention="auto"'
        )
    if config.dtype == "bfloat16":
        raise ValueError(
            "onnxruntime's CPU provider has no bfloat16 kernels for this model; export float32 "
            "(or float16)"
        )
    if config.attention != "auto":
        return config
    return dataclasses.replace(config, attention=attention_rule(config, "cpu"))


@contextlib.contextmanager
def _quiet_converter() -> Iterator[None]:
    """jax2onnx's IR library logs a warning for every constant shape it cannot type; none of them
    reach the graph, so they are silenced while it converts."""
    logger = logging.getLogger("onnx_ir")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    *,
    input: Input = "waveform",
) -> onnx.ModelProto:
    """The serving function (`ast_jax.export.serving`) as an ONNX model.

    Args:
      config: the model config (`onnx_config` applies).
      params: the `ASTForAudioClassification` params, stored as initializers.
      extractor: the feature extractor the waveform input goes through.
      input: ``"waveform"`` (inputs ``waveforms``, ``lengths``) or ``"features"``.

    Returns:
      The ``onnx.ModelProto`` (``onnx.save(model, path)`` writes it).

    Raises:
      ImportError: jax2onnx is not installed.
      ValueError: a config `onnx_config` refuses, or a bad input or extractor.
    """
    try:
        from jax2onnx import to_onnx
    except ImportError as error:
        raise ImportError(_INSTALL) from error
    config = onnx_config(config)
    function = serving_function(config, params, extractor, input=input, dft="matmul")
    shapes = input_shapes(config, extractor, input)
    (batch,) = jax.export.symbolic_shape(BATCH)
    specs = [
        jax.ShapeDtypeStruct(tuple(batch if d == BATCH else d for d in shape), dtype)
        for shape, dtype in shapes.values()
    ]
    with _quiet_converter():
        model = to_onnx(
            function,
            specs,
            model_name="ast_jax",
            opset=OPSET,
            input_names=list(shapes),
            output_names=["logits"],
        )
    _match_conv_weights(model)
    return model


def _match_conv_weights(model: onnx.ModelProto) -> None:
    """Casts Conv weights and biases to their input's type, in place.

    jax2onnx stores the patch convolution's (transposed) kernel as float32 even when the
    convolution runs in float16, which onnxruntime rejects; the cast is the one JAX makes.
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info)}
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        wanted = types.get(node.input[0]) if node.op_type == "Conv" else None
        if not wanted:
            continue
        for name in node.input[1:]:
            tensor = initializers.get(name)
            if tensor is not None and tensor.data_type != wanted:
                array = numpy_helper.to_array(tensor)
                dtype = onnx.helper.tensor_dtype_to_np_dtype(wanted)
                tensor.CopyFrom(numpy_helper.from_array(array.astype(dtype), name))
