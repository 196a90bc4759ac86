"""ast-jax: the Audio Spectrogram Transformer in JAX/Flax, with a torch-free Kaldi fbank."""

from ast_jax.audio import load_audio, stream_audio
from ast_jax.bundled import bundled_model_path
from ast_jax.checkpoint import (
    export_hf,
    load_feature_extractor,
    load_original,
    load_pretrained,
    save_pretrained,
)
from ast_jax.config import ASTConfig
from ast_jax.convert import params_from_hf, params_from_original, params_to_hf
from ast_jax.explain import attention_rollout, explain, rollout_heatmap
from ast_jax.features import FbankOptions, FeatureExtractor, fbank, fbank_batch
from ast_jax.inference import (
    AudioClassifier,
    Classification,
    Embedding,
    Failure,
    default_activation,
    save_embeddings,
)
from ast_jax.model import ASTForAudioClassification, ASTModel
from ast_jax.positions import adapt_params, adapt_position_embeddings
from ast_jax.sharding import data_mesh
from ast_jax.windows import Windowing

__all__ = [
    "ASTConfig",
    "ASTForAudioClassification",
    "ASTModel",
    "AudioClassifier",
    "Classification",
    "Embedding",
    "Failure",
    "FbankOptions",
    "FeatureExtractor",
    "Windowing",
    "adapt_params",
    "adapt_position_embeddings",
    "attention_rollout",
    "bundled_model_path",
    "data_mesh",
    "default_activation",
    "explain",
    "export_hf",
    "fbank",
    "fbank_batch",
    "load_audio",
    "load_feature_extractor",
    "load_original",
    "load_pretrained",
    "params_from_hf",
    "params_from_original",
    "params_to_hf",
    "rollout_heatmap",
    "save_embeddings",
    "save_pretrained",
    "stream_audio",
]
