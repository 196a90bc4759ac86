"""Audio Spectrogram Transformer models in Flax Linen (docs/parity.md, The model in brief).

`ASTModel` is the backbone, `ASTForAudioClassification` adds the classifier head. Both are pure:
the caller jits `model.apply`. Param names are the on-disk format of `ast_jax.save_pretrained`
(`ast_jax.model.params` builds and checks such trees):

    ASTModel params
    ├── embeddings
    │   ├── cls_token                (1, 1, D)
    │   ├── distillation_token       (1, 1, D)
    │   ├── position_embeddings      (1, N, D)
    │   └── patch_projection         kernel (P, P, 1, D), bias (D,)
    ├── layer_0 … layer_{L-1}
    │   ├── layernorm_before         scale (D,), bias (D,)
    │   ├── attention
    │   │   ├── qkv                  kernel (D, 3D) [q | k | v], bias (3D,) (absent if not qkv_bias)
    │   │   └── out                  kernel (D, D), bias (D,)
    │   ├── layernorm_after          scale (D,), bias (D,)
    │   └── mlp
    │       ├── fc1                  kernel (D, I), bias (I,)
    │       └── fc2                  kernel (I, D), bias (D,)
    └── layernorm                    scale (D,), bias (D,)

    ASTForAudioClassification params
    ├── backbone                     (the ASTModel tree above)
    └── classifier
        ├── layernorm                scale (D,), bias (D,)
        └── dense                    kernel (D, C), bias (C,) (absent if num_labels == 0)

Shape legend: B batch, T frames (`max_length`), F mel bins, N tokens (patches + 2), D hidden,
P patch size, L layers, I intermediate width, C classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from ast_jax.config import ASTConfig
from ast_jax.model.layers import ASTEmbeddings, ASTLayer, ASTMLPHead, layer_norm

__all__ = ["ASTClassifierOutput", "ASTForAudioClassification", "ASTModel", "ASTModelOutput"]


def _to_tuple(output: Any) -> tuple[Any, ...]:
    return tuple(
        getattr(output, field.name)
        for field in dataclasses.fields(output)
        if getattr(output, field.name) is not None
    )


@flax.struct.dataclass
class ASTModelOutput:
    """Backbone outputs (fields in transformers' order; `to_tuple()` is its tuple form).

    Attributes:
        last_hidden_state: `(B, N, D)` float32, after the final LayerNorm.
        pooler_output: `(B, D)` float32, mean of the normalised cls and distillation tokens.
        hidden_states: with `output_hidden_states=True`, L + 1 arrays `(B, N, D)`: the embeddings
            output and each layer's output, before the final LayerNorm (as HF); otherwise None.
        attentions: with `output_attentions=True`, L float32 arrays `(B, H, N, N)`: each layer's
            softmax probabilities (rows: queries, columns: keys); otherwise None.
    """

    last_hidden_state: jax.Array
    pooler_output: jax.Array
    hidden_states: tuple[jax.Array, ...] | None = None
    attentions: tuple[jax.Array, ...] | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are not None, in order (transformers' `return_dict=False` form)."""
        return _to_tuple(self)


@flax.struct.dataclass
class ASTClassifierOutput:
    """Classifier outputs (fields in transformers' order, without its `loss`).

    Attributes:
        logits: `(B, C)` float32, raw scores (apply a sigmoid for AudioSet probabilities).
        hidden_states: as `ASTModelOutput.hidden_states`.
        attentions: as `ASTModelOutput.attentions`.
    """

    logits: jax.Array
    hidden_states: tuple[jax.Array, ...] | None = None
    attentions: tuple[jax.Array, ...] | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are not None, in order (transformers' `return_dict=False` form)."""
        return _to_tuple(self)


def _check_input(input_values: jax.Array, config: ASTConfig) -> None:
    expected = (config.max_length, config.num_mel_bins)
    if input_values.ndim != 3 or tuple(input_values.shape[1:]) != expected:
        raise ValueError(
            f"input_values must have shape (B, max_length, num_mel_bins) = (B, {expected[0]}, "
            f"{expected[1]}), got {tuple(input_values.shape)}"
        )


def _scan_layers(
    config: ASTConfig, layers: list[Any], x: jax.Array, dropout_key: jax.Array | None
) -> jax.Array:
    """The transformer layers in training mode as one `jax.lax.scan` over their stacked params:
    `(B, N, D)` -> `(B, N, D)`, layer i's dropout drawn from ``dropout_key`` folded with i (no
    key: dropout with a rate above 0 raises Flax's missing-rng error, as the unrolled layers do).

    Unrolled, XLA:CPU fuses the chain of elementwise ops that carries the residual stream's
    gradient from the last layer down into every layer's weight-gradient kernels, so a layer's
    backward pass grows with the number of layers above it (the full-size train step: 5.2 s per
    example unrolled, 3.5 s scanned). A scan's carry is materialised once per layer. Stacking
    the params costs one copy of them per step.
    """
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *layers)  # leading axis L
    layer = ASTLayer(config, parent=None)

    def body(x: jax.Array, params_and_index: tuple[Any, jax.Array]) -> tuple[jax.Array, None]:
        params, index = params_and_index
        rngs = {} if dropout_key is None else {"dropout": jax.random.fold_in(dropout_key, index)}
        x, _ = layer.apply({"params": params}, x, deterministic=False, rngs=rngs)
        return x, None

    x, _ = jax.lax.scan(body, x, (stacked, jnp.arange(len(layers))))
    return x


class ASTModel(nn.Module):
    """AST backbone: `(B, T, F)` log-mel features -> `ASTModelOutput`."""

    config: ASTConfig
    # The name of the first argument of `__call__`, as transformers' `model.main_input_name`.
    main_input_name = "input_values"

    @nn.compact
    def __call__(
        self,
        input_values: jax.typing.ArrayLike,
        *,
        deterministic: bool = True,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> ASTModelOutput:
        """Runs the backbone.

        Args:
            input_values: `(B, T, F)` = `(B, max_length, num_mel_bins)` normalised log-mel features.
            deterministic: disables dropout; pass False with a "dropout" rng to train (the
                layers then run as one scan, `_scan_layers`, unless hidden states or attention
                maps are asked for).
            output_hidden_states: also return the embeddings output and every layer output; None
                for `config.output_hidden_states`.
            output_attentions: also return every layer's attention probabilities (computed
                explicitly instead of by the fused kernel, so slower and `O(N^2)` in memory); None
                for `config.output_attentions`.

        Returns:
            `ASTModelOutput`.

        Raises:
            ValueError: `input_values` has the wrong shape.
        """
        cfg = self.config
        if output_hidden_states is None:
            output_hidden_states = cfg.output_hidden_states
        if output_attentions is None:
            output_attentions = cfg.output_attentions
        x = jnp.asarray(input_values)
        _check_input(x, cfg)
        x = ASTEmbeddings(cfg, name="embeddings")(x, deterministic=deterministic)  # (B, N, D)
        hidden_states, attentions = [x], []
        if deterministic or output_hidden_states or output_attentions or self.is_initializing():
            for i in range(cfg.num_hidden_layers):
                x, probs = ASTLayer(cfg, name=f"layer_{i}")(
                    x, deterministic=deterministic, output_attentions=output_attentions
                )
                hidden_states.append(x)
                attentions.append(probs)
        else:
            layers = [self.variables["params"][f"layer_{i}"] for i in range(cfg.num_hidden_layers)]
            dropout_key = self.make_rng("dropout") if self.has_rng("dropout") else None
            x = _scan_layers(cfg, layers, x, dropout_key)
        x = layer_norm(cfg, "layernorm", dtype=jnp.float32)(x)  # (B, N, D)
        pooled = (x[:, 0] + x[:, 1]) / 2  # (B, D)
        return ASTModelOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class ASTForAudioClassification(nn.Module):
    """AST with the `LN -> Dense` head: `(B, T, F)` features -> `ASTClassifierOutput`."""

    config: ASTConfig
    # The name of the first argument of `__call__`, as transformers' `model.main_input_name`.
    main_input_name = "input_values"

    @nn.compact
    def __call__(
        self,
        input_values: jax.typing.ArrayLike,
        *,
        deterministic: bool = True,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> ASTClassifierOutput:
        """Runs backbone and head.

        Args:
            input_values: `(B, T, F)` = `(B, max_length, num_mel_bins)` normalised log-mel features.
            deterministic: disables dropout; pass False with a "dropout" rng to train (the
                layers then run as one scan, `_scan_layers`, unless hidden states or attention
                maps are asked for).
            output_hidden_states: also return the backbone's hidden states; None for
                `config.output_hidden_states`.
            output_attentions: also return every layer's attention probabilities (see `ASTModel`);
                None for `config.output_attentions`.

        Returns:
            `ASTClassifierOutput` with `(B, C)` float32 logits.

        Raises:
            ValueError: `input_values` has the wrong shape.
        """
        out = ASTModel(self.config, name="backbone")(
            input_values,
            deterministic=deterministic,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        logits = ASTMLPHead(self.config, name="classifier")(out.pooler_output)
        return ASTClassifierOutput(
            logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
