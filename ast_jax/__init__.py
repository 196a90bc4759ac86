"""ast-jax: the Audio Spectrogram Transformer in JAX/Flax, with a torch-free Kaldi fbank.

The package is built in floors, each importing only the floors below it:

    hub, files                   ground: hub ids -> cached snapshots, atomic file writes
    config, exports              base: the model config, lazy exports
    runtime                      device meshes, shardings, batching strategies
    frontend                     audio decoding, Kaldi fbank (NumPy and JAX), feature extractor
    model                        Flax modules, attention kernels, params, positions, scores
    checkpoints                  ast-jax / Hugging Face directories, hub ids, original .pth files
    plots                        every figure (matplotlib's object API)
    inference | training | export  the classifier pipeline | fine-tuning | serving artifacts
    cli                          the ``ast-jax`` command line

The names below are the public API. They are imported on first use, so ``import ast_jax`` is
cheap and loads neither JAX nor optax, matplotlib, tqdm or torch until a name needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ast_jax._legacy import install_legacy_modules
from ast_jax.exports import lazy_getattr

# Public name -> the module that defines it.
_EXPORTS = {
    "ASTConfig": "ast_jax.config",
    "load_audio": "ast_jax.frontend.audio",
    "stream_audio": "ast_jax.frontend.audio",
    "FbankOptions": "ast_jax.frontend.kaldi",
    "fbank": "ast_jax.frontend.kaldi",
    "fbank_batch": "ast_jax.frontend.kaldi",
    "FeatureExtractor": "ast_jax.frontend.extractor",
    "BatchFeature": "ast_jax.frontend.batch",
    "Windowing": "ast_jax.frontend.windows",
    "extract_features": "ast_jax.frontend.jax_fbank",
    "ASTForAudioClassification": "ast_jax.model.modules",
    "ASTModel": "ast_jax.model.modules",
    "resolve_attention": "ast_jax.model.attention",
    "adapt_params": "ast_jax.model.positions",
    "adapt_position_embeddings": "ast_jax.model.positions",
    "attention_rollout": "ast_jax.model.attention_maps",
    "explain": "ast_jax.model.attention_maps",
    "rollout_heatmap": "ast_jax.model.attention_maps",
    "default_activation": "ast_jax.model.scores",
    "logits_from_waveforms": "ast_jax.model.waveforms",
    "bundled_model_path": "ast_jax.checkpoints.bundled",
    "params_from_hf": "ast_jax.checkpoints.keymaps",
    "params_from_original": "ast_jax.checkpoints.keymaps",
    "params_to_hf": "ast_jax.checkpoints.keymaps",
    "load_original": "ast_jax.checkpoints.original",
    "export_hf": "ast_jax.checkpoints.pretrained",
    "load_feature_extractor": "ast_jax.checkpoints.pretrained",
    "load_pretrained": "ast_jax.checkpoints.pretrained",
    "save_pretrained": "ast_jax.checkpoints.pretrained",
    "data_mesh": "ast_jax.runtime.sharding",
    "process_shard": "ast_jax.runtime.sharding",
    "per_example": "ast_jax.runtime.batching",
    "AudioClassifier": "ast_jax.inference.classifier",
    "Classification": "ast_jax.inference.results",
    "Embedding": "ast_jax.inference.results",
    "Failure": "ast_jax.inference.results",
    "save_embeddings": "ast_jax.inference.embeddings",
    "TrainConfig": "ast_jax.training.config",
    "finetune": "ast_jax.training.finetune",
    "evaluate_model": "ast_jax.training.finetune",
    "fit": "ast_jax.training.loop",
    "export_model": "ast_jax.export.artifact",
    "export_onnx": "ast_jax.export.onnx",
    "export_stablehlo": "ast_jax.export.stablehlo",
}

__all__ = [
    "ASTConfig",
    "ASTForAudioClassification",
    "ASTModel",
    "AudioClassifier",
    "BatchFeature",
    "Classification",
    "Embedding",
    "Failure",
    "FbankOptions",
    "FeatureExtractor",
    "TrainConfig",
    "Windowing",
    "adapt_params",
    "adapt_position_embeddings",
    "attention_rollout",
    "bundled_model_path",
    "data_mesh",
    "default_activation",
    "evaluate_model",
    "explain",
    "export_hf",
    "export_model",
    "export_onnx",
    "export_stablehlo",
    "extract_features",
    "fbank",
    "fbank_batch",
    "finetune",
    "fit",
    "load_audio",
    "load_feature_extractor",
    "load_original",
    "load_pretrained",
    "logits_from_waveforms",
    "params_from_hf",
    "params_from_original",
    "params_to_hf",
    "per_example",
    "process_shard",
    "resolve_attention",
    "rollout_heatmap",
    "save_embeddings",
    "save_pretrained",
    "stream_audio",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


install_legacy_modules()

if TYPE_CHECKING:
    from ast_jax.checkpoints.bundled import bundled_model_path
    from ast_jax.checkpoints.keymaps import params_from_hf, params_from_original, params_to_hf
    from ast_jax.checkpoints.original import load_original
    from ast_jax.checkpoints.pretrained import (
        export_hf,
        load_feature_extractor,
        load_pretrained,
        save_pretrained,
    )
    from ast_jax.config import ASTConfig
    from ast_jax.export.artifact import export_model
    from ast_jax.export.onnx import export_onnx
    from ast_jax.export.stablehlo import export_stablehlo
    from ast_jax.frontend.audio import load_audio, stream_audio
    from ast_jax.frontend.batch import BatchFeature
    from ast_jax.frontend.extractor import FeatureExtractor
    from ast_jax.frontend.jax_fbank import extract_features
    from ast_jax.frontend.kaldi import FbankOptions, fbank, fbank_batch
    from ast_jax.frontend.windows import Windowing
    from ast_jax.inference.classifier import AudioClassifier
    from ast_jax.inference.embeddings import save_embeddings
    from ast_jax.inference.results import Classification, Embedding, Failure
    from ast_jax.model.attention import resolve_attention
    from ast_jax.model.attention_maps import attention_rollout, explain, rollout_heatmap
    from ast_jax.model.modules import ASTForAudioClassification, ASTModel
    from ast_jax.model.positions import adapt_params, adapt_position_embeddings
    from ast_jax.model.scores import default_activation
    from ast_jax.model.waveforms import logits_from_waveforms
    from ast_jax.runtime.batching import per_example
    from ast_jax.runtime.sharding import data_mesh, process_shard
    from ast_jax.training.config import TrainConfig
    from ast_jax.training.finetune import evaluate_model, finetune
    from ast_jax.training.loop import fit
