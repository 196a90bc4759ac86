#!/usr/bin/env python3
"""Convert an AST checkpoint (HF directory, hub id, ast-jax directory or original .pth) to ast-jax.

Usage:
    python conversion/convert_pytorch.py SRC OUT_DIR [--check] [--tolerance 1e-4]
    python conversion/convert_pytorch.py audioset_10_10_0.4593.pth OUT_DIR [--strides F T]
        [--max-length T] [--heads H] [--hf-layer-norm-eps] [--check]

SRC is a Hugging Face checkpoint directory (`model.safetensors` or `pytorch_model.bin`), a hub id
such as `MIT/ast-finetuned-audioset-10-10-0.4593`, an ast-jax directory, or an original
YuanGongND/ast `.pth` file (read torch-free by `ast_jax.load_original`; strides from the file name
unless given; timm's LayerNorm eps unless `--hf-layer-norm-eps`). OUT_DIR receives `config.json`,
`ast_jax.safetensors` and `preprocessor_config.json` (AudioSet statistics for a `.pth`, which has
none).

`--check` runs transformers' PyTorch model on transformers' `ASTFeatureExtractor` features and the
JAX model on ast-jax's features of the same synthesised clip, prints the max |logit difference|
(end to end, and model-only on identical features) and exits with status 1 beyond `--tolerance`.
transformers has one LayerNorm eps, so a timm-exact config is checked with the head eps set to the
blocks' (the original `.pth` keys are checked by tests/test_original.py against the original
forward pass).
This script needs torch and transformers (the `test` extra); `ast_jax` itself does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
import torch
import transformers

from ast_jax import (
    ASTConfig,
    FeatureExtractor,
    export_hf,
    load_feature_extractor,
    save_pretrained,
)
from ast_jax.checkpoints.pretrained import WEIGHTS_NAME
from ast_jax.checkpoints.sources import load_source
from ast_jax.frontend.extractor import default_extractor
from ast_jax.model.params import build_model, has_head

# HF's own bar for AST logits (docs/parity.md, Test tolerances).
DEFAULT_TOLERANCE = 1e-4


def synthesise_clip(extractor: FeatureExtractor, seed: int = 0) -> np.ndarray:
    """A float32 chirp + noise + clicks filling ~90% of the frames (so padding is exercised)."""
    rate = extractor.sampling_rate
    seconds = 0.9 * extractor.max_length * 0.010  # 10 ms frame shift
    t = np.arange(int(seconds * rate)) / rate  # (S,)
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 0.5 * (3000 / seconds) * t**2))
    noise = 0.05 * np.random.default_rng(seed).standard_normal(t.size)
    clicks = np.where(np.arange(t.size) % (rate // 4) == 0, 0.8, 0.0)
    return (chirp + noise + clicks).astype(np.float32)


def _feature_extractor(src: str, config: ASTConfig) -> FeatureExtractor:
    try:
        return load_feature_extractor(src)
    except (FileNotFoundError, NotADirectoryError):  # the latter: a .pth file
        print(f"no preprocessor_config.json in {src}: using AudioSet statistics")
        return default_extractor(config)


def _reference_model(src: str, config: ASTConfig, params: dict, scratch: Path) -> torch.nn.Module:
    """transformers' model of SRC itself, or of our export when SRC is ast-jax or a .pth."""
    if Path(src).is_file() or (Path(src) / WEIGHTS_NAME).is_file():
        src = str(export_hf(scratch, config, params))
    cls = transformers.ASTForAudioClassification if has_head(params) else transformers.ASTModel
    return cls.from_pretrained(src).eval()


def check(src: str, config: ASTConfig, params: dict, extractor: FeatureExtractor) -> float:
    """Prints feature and logit differences; returns the end-to-end max |logit difference|."""
    config = dataclasses.replace(config, head_layer_norm_eps=None)  # transformers has one eps
    clip = synthesise_clip(extractor)
    hf_extractor = transformers.ASTFeatureExtractor(
        **{k: v for k, v in extractor.to_dict().items() if k != "feature_extractor_type"}
    )
    rate = extractor.sampling_rate
    hf_features = hf_extractor(clip, sampling_rate=rate, return_tensors="np")["input_values"]
    our_features = extractor(clip, sampling_rate=rate)["input_values"]  # (1, T, F)
    with tempfile.TemporaryDirectory() as scratch:
        model = _reference_model(src, config, params, Path(scratch))
    with torch.no_grad():
        out = model(torch.from_numpy(hf_features))
    reference = (out.logits if has_head(params) else out.pooler_output).numpy()
    apply = jax.jit(build_model(config, with_head=has_head(params)).apply)
    with jax.default_matmul_precision("float32"):
        ours_e2e = apply({"params": params}, our_features)
        ours_same = apply({"params": params}, hf_features)
    pick = (lambda o: o.logits) if has_head(params) else (lambda o: o.pooler_output)
    feature_diff = float(np.abs(our_features - hf_features).max())
    model_diff = float(np.abs(np.asarray(pick(ours_same)) - reference).max())
    e2e_diff = float(np.abs(np.asarray(pick(ours_e2e)) - reference).max())
    print(f"max |feature diff|            {feature_diff:.3e}")
    print(f"max |logit diff| model only   {model_diff:.3e}")
    print(f"max |logit diff| end to end   {e2e_diff:.3e}")
    return e2e_diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="HF directory, hub id or ast-jax directory")
    parser.add_argument("out_dir", type=Path, help="ast-jax directory to write")
    parser.add_argument("--check", action="store_true", help="compare logits with transformers")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    original = parser.add_argument_group("original .pth checkpoints")
    original.add_argument("--strides", type=int, nargs=2, metavar=("FREQUENCY", "TIME"))
    original.add_argument("--max-length", type=int, help="input frames (default: 1024, 512, 128)")
    original.add_argument("--heads", type=int, help="attention heads (default: D / 64)")
    original.add_argument("--hf-layer-norm-eps", action="store_true", help="1e-12, not timm's")
    args = parser.parse_args(argv)

    config, params = load_source(
        args.src,
        strides=args.strides,
        max_length=args.max_length,
        num_attention_heads=args.heads,
        timm_exact=not args.hf_layer_norm_eps,
    )
    extractor = _feature_extractor(args.src, config)
    save_pretrained(args.out_dir, config, params, feature_extractor=extractor)
    print(f"wrote {args.out_dir} ({config.num_hidden_layers} layers, {config.num_labels} labels)")
    if not args.check:
        return 0
    diff = check(args.src, config, params, extractor)
    if diff > args.tolerance:
        print(f"FAIL: {diff:.3e} > tolerance {args.tolerance:.1e}")
        return 1
    print(f"OK: within tolerance {args.tolerance:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
