#!/usr/bin/env python3
"""`classify` throughput on a folder of 10-s clips: the bundled kws12, a tiny and a full-size AST,
and the same full-size weights through transformers (the reference pipeline).

What is timed is `AudioClassifier.classify` over the folder's files, the path `ast-jax classify`
runs: decode, window, featurise, jitted model in fixed-size batches (one batch in flight while the
next is featurised), activation, aggregation. Compile time (the first call, one clip) is reported
apart from the steady state (median of `--repeats` passes over the folder after that first call).
The random tiny and full-size models take 1024-frame (10.24 s) inputs, so each clip is one window;
kws12 takes 128 frames, so each clip is eight windows. `full-transformers` is the reference path
for the full model's weights: soundfile decode, transformers' `ASTFeatureExtractor`, the PyTorch
model (SDPA attention) in batches of `--batch-size`, sigmoid, top label per clip.

    .venv/bin/python benchmarks/bench_classify.py [--clips 32] [--models kws12 tiny full]

Prints one JSON line per model and a table; `--output FILE` also appends the JSON lines to FILE.
The load average is printed with the results: on a shared machine, numbers move with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import soundfile

from ast_jax import (
    ASTConfig,
    ASTForAudioClassification,
    AudioClassifier,
    FeatureExtractor,
    bundled_model_path,
    export_hf,
    load_pretrained,
    save_pretrained,
)

SAMPLING_RATE = 16000
CLIP_SECONDS = 10.0
AUDIOSET = ASTConfig.from_preset("MIT/ast-finetuned-audioset-10-10-0.4593")  # 768 wide, 12 layers
MODELS = {
    "tiny": dataclasses.replace(
        AUDIOSET, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    ),
    "full": AUDIOSET,
}
BUNDLED = "kws12"  # the shipped keyword spotter (1.28-s windows: a 10-s clip is 8 windows)
REFERENCE = "full-transformers"


def _write_clips(folder: Path, count: int) -> list[Path]:
    """``count`` 10-s 16-bit WAVs: a wobbling tone plus noise, different per clip."""
    t = np.arange(int(CLIP_SECONDS * SAMPLING_RATE)) / SAMPLING_RATE
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        tone = np.sin(2 * np.pi * (200 + 50 * i) * t * (1 + 0.3 * np.sin(np.pi * t)))
        clip = 0.3 * tone + 0.05 * rng.standard_normal(t.size)
        paths.append(folder / f"clip_{i:03d}.wav")
        soundfile.write(paths[-1], clip.astype(np.float32), SAMPLING_RATE, subtype="PCM_16")
    return paths


def _checkpoint(name: str, folder: Path) -> Path:
    if name == BUNDLED:
        return bundled_model_path(name)
    if name == REFERENCE:  # the full model's weights in transformers' format
        config, params = load_pretrained(_checkpoint("full", folder))
        return export_hf(folder / name, config, params)
    if (folder / name).is_dir():
        return folder / name
    config = MODELS[name]
    dummy = np.zeros((1, config.max_length, config.num_mel_bins), np.float32)
    params = jax.jit(ASTForAudioClassification(config).init)(jax.random.key(0), dummy)["params"]
    return save_pretrained(folder / name, config, params, feature_extractor=FeatureExtractor())


class _TransformersPipeline:
    """files -> top label per file with transformers, as its documentation's audio example."""

    def __init__(self, checkpoint: Path, batch_size: int) -> None:
        import torch
        import transformers

        self.torch, self.batch_size = torch, batch_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-zero mel filter
            self.extractor = transformers.ASTFeatureExtractor()
        self.model = transformers.ASTForAudioClassification.from_pretrained(
            checkpoint, attn_implementation="sdpa"
        ).eval()
        self.num_params = sum(p.numel() for p in self.model.parameters())

    def classify(self, paths: list[Path]) -> list[str]:
        labels = []
        for start in range(0, len(paths), self.batch_size):
            audio = [
                soundfile.read(path, dtype="float32")[0]
                for path in paths[start:][: self.batch_size]
            ]
            inputs = self.extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt")
            with self.torch.inference_mode():
                scores = self.torch.sigmoid(self.model(**inputs).logits)
            labels += [self.model.config.id2label[int(i)] for i in scores.argmax(-1)]
        return labels


def _bench(name: str, checkpoint: Path, clips: list[Path], repeats: int, batch_size: int) -> dict:
    start = time.perf_counter()
    if name == REFERENCE:
        classifier = _TransformersPipeline(checkpoint, batch_size)
    else:
        classifier = AudioClassifier.from_pretrained(checkpoint, batch_size=batch_size)
    classifier.classify(clips[:1])
    first_call = time.perf_counter() - start
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.classify(clips)
        passes.append(time.perf_counter() - start)
    seconds = statistics.median(passes)
    return {
        "benchmark": "classify",
        "model": name,
        "parameters": classifier.num_params,
        "clips": len(clips),
        "clip_seconds": CLIP_SECONDS,
        "batch_size": batch_size,
        "load_and_compile_s": round(first_call, 3),
        "median_pass_s": round(seconds, 3),
        "clips_per_s": round(len(clips) / seconds, 3),
        "audio_seconds_per_s": round(len(clips) * CLIP_SECONDS / seconds, 2),
        "device": str(jax.devices()[0].device_kind),
        "devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32, help="10-s clips in the folder")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the folder")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[*sorted(MODELS), BUNDLED, REFERENCE],
        default=[BUNDLED, "tiny", "full", REFERENCE],
    )
    parser.add_argument("--output", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as temp:
        clips = _write_clips(Path(temp), args.clips)
        for name in args.models:
            checkpoint = _checkpoint(name, Path(temp))
            rows.append(_bench(name, checkpoint, clips, args.repeats, args.batch_size))
            print(json.dumps(rows[-1]), flush=True)
            if args.output is not None:
                with open(args.output, "a", encoding="utf-8") as file:
                    file.write(json.dumps(rows[-1]) + "\n")
    print(
        f"\n{'model':<18} {'params':>11} {'compile s':>10} {'clips/s':>9} {'x realtime':>11} load"
    )
    for row in rows:
        print(
            f"{row['model']:<18} {row['parameters']:>11,} {row['load_and_compile_s']:>10.2f} "
            f"{row['clips_per_s']:>9.2f} {row['audio_seconds_per_s'] / 1:>11.1f} "
            f"{row['load_average_1min']}"
        )


if __name__ == "__main__":
    main()
