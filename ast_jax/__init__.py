"""ast-jax: the Audio Spectrogram Transformer in JAX/Flax, with a torch-free Kaldi fbank."""

from ast_jax.audio import load_audio
from ast_jax.checkpoint import export_hf, load_feature_extractor, load_pretrained, save_pretrained
from ast_jax.config import ASTConfig
from ast_jax.convert import params_from_hf, params_to_hf
from ast_jax.features import FbankOptions, FeatureExtractor, fbank, fbank_batch
from ast_jax.model import ASTForAudioClassification, ASTModel

__all__ = [
    "ASTConfig",
    "ASTForAudioClassification",
    "ASTModel",
    "FbankOptions",
    "FeatureExtractor",
    "export_hf",
    "fbank",
    "fbank_batch",
    "load_audio",
    "load_feature_extractor",
    "load_pretrained",
    "params_from_hf",
    "params_to_hf",
    "save_pretrained",
]
