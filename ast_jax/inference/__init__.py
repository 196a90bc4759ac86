"""Inference: the `AudioClassifier` pipeline (files or waveforms to scores and embeddings), its
result types and embedding files. Imports the model, checkpoints and runtime; never training.

The names of the former ``ast_jax.inference`` module are importable from here too.
"""

from __future__ import annotations

from ast_jax.exports import lazy_getattr

_EXPORTS = {
    "AudioClassifier": "ast_jax.inference.classifier",
    "Classification": "ast_jax.inference.results",
    "Embedding": "ast_jax.inference.results",
    "Failure": "ast_jax.inference.results",
    "AGGREGATES": "ast_jax.inference.results",
    "EMBEDDING_FORMATS": "ast_jax.inference.embeddings",
    "save_embeddings": "ast_jax.inference.embeddings",
    "ACTIVATIONS": "ast_jax.model.scores",
    "activate": "ast_jax.model.scores",
    "default_activation": "ast_jax.model.scores",
    "load_model": "ast_jax.checkpoints.sources",
    "resolve_model": "ast_jax.checkpoints.sources",
}

__all__ = [
    "ACTIVATIONS",
    "AGGREGATES",
    "EMBEDDING_FORMATS",
    "AudioClassifier",
    "Classification",
    "Embedding",
    "Failure",
    "activate",
    "default_activation",
    "load_model",
    "resolve_model",
    "save_embeddings",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
