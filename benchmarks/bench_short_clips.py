#!/usr/bin/env python3
"""Short-clip inference: `AudioClassifier(length_bucket=...)` against padding to `max_length`.

For each clip length, the same synthetic clips (tones, chirps, noise bursts; different per clip) go
through two classifiers of one checkpoint: padded to `max_length` frames (the Hugging Face
computation) and unpadded at the bucketed length with the first `t_dim` position columns. Reported
per length: the model input length, steady-state seconds per batch (median of `--repeats` calls on
one full batch, after a first call that compiles), the speed-up, and agreement of the scores:
top-1 agreement, mean top-5 overlap (|top5 a & top5 b| / 5), and max / mean |score difference|.

    .venv/bin/python benchmarks/bench_short_clips.py [--model full|tiny|PATH] [--seconds 1 2 5]

`full` is a randomly initialised 768-wide, 12-layer AudioSet-shaped model (T = 1024) whose position
table, cls and distillation tokens are drawn like timm's (normal, std 0.02): HF's init leaves them
zero, which would make every position choice agree. Agreement on random weights says how much the
dropped padding tokens move the scores of *that* model, not of a trained one; pass a checkpoint
directory as `--model` for a trained model, and `--audio-dir DIR` (class folders of audio files,
e.g. a keyword test set) to use the loudest `--seconds` of real clips instead of synthetic ones
(then accuracy against the folder names is reported too). Prints one JSON line per length and a
table.

    .venv/bin/python benchmarks/bench_short_clips.py --model runs/kws12/model \
        --audio-dir data/kws/test --clips 50 --seconds 1 0.7 0.5 --bucket 1 --batch-size 32
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
from pathlib import Path

import jax
import numpy as np
import soundfile

from ast_jax import (
    ASTConfig,
    ASTForAudioClassification,
    AudioClassifier,
    FeatureExtractor,
    save_pretrained,
)
from ast_jax.frontend.kaldi import num_frames
from ast_jax.model.positions import bucketed_length

SAMPLING_RATE = 16000
AUDIOSET = ASTConfig.from_preset("MIT/ast-finetuned-audioset-10-10-0.4593")
CONFIGS = {
    "full": AUDIOSET,
    "tiny": dataclasses.replace(
        AUDIOSET, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    ),
}
TIMM_INIT_STD = 0.02


def _random_checkpoint(name: str, folder: Path) -> Path:
    config = CONFIGS[name]
    dummy = np.zeros((1, config.max_length, config.num_mel_bins), np.float32)
    params = jax.jit(ASTForAudioClassification(config).init)(jax.random.key(0), dummy)["params"]
    params = jax.tree.map(np.asarray, params)
    rng = np.random.default_rng(0)
    embeddings = params["backbone"]["embeddings"]
    for key in ("position_embeddings", "cls_token", "distillation_token"):
        embeddings[key] = (TIMM_INIT_STD * rng.standard_normal(embeddings[key].shape)).astype(
            np.float32
        )
    return save_pretrained(folder / name, config, params, feature_extractor=FeatureExtractor())


def _clips(seconds: float, count: int, seed: int) -> list[np.ndarray]:
    """``count`` clips: two tones, a chirp and a noise burst at random places and pitches."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    clips = []
    for _ in range(count):
        f1, f2, f3 = rng.uniform(100, 4000, 3)
        clip = 0.2 * np.sin(2 * np.pi * f1 * t) + 0.1 * np.sin(2 * np.pi * f2 * t)
        clip += 0.1 * np.sin(2 * np.pi * (f3 + 500 * t) * t)
        burst = slice(*sorted(rng.integers(0, t.size, 2)))
        clip[burst] += 0.1 * rng.standard_normal(clip[burst].size)
        clips.append(clip.astype(np.float32))
    return clips


def _loudest(directory: Path, seconds: float, per_class: int) -> tuple[list, list[str]]:
    """The loudest ``seconds`` of the first ``per_class`` files of each class folder, and labels."""
    size = round(seconds * SAMPLING_RATE)
    clips, labels = [], []
    for folder in sorted(d for d in directory.iterdir() if d.is_dir()):
        for path in sorted(folder.iterdir())[:per_class]:
            audio, rate = soundfile.read(path, dtype="float32")
            if rate != SAMPLING_RATE or audio.ndim != 1:
                raise ValueError(f"{path}: expected mono {SAMPLING_RATE} Hz audio")
            energy = np.convolve(audio**2, np.ones(min(size, audio.size)), "valid")
            start = int(energy.argmax())
            clips.append(audio[start : start + size])
            labels.append(folder.name)
    return clips, labels


def _time(classifier: AudioClassifier, clips: list[np.ndarray], repeats: int) -> tuple[float, list]:
    """(median seconds of classifying one batch of clips, results of all clips incl. compile)."""
    results = classifier.classify(clips)  # compiles
    batch = clips[: classifier.batch_size]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.classify(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times), results


def _agreement(padded: list, short: list, labels: list[str] | None) -> dict:
    a = np.stack([r.scores for r in padded])  # (clips, C)
    b = np.stack([r.scores for r in short])
    top_a, top_b = np.argsort(-a, axis=1)[:, :5], np.argsort(-b, axis=1)[:, :5]
    overlap = [len(set(x) & set(y)) / 5 for x, y in zip(top_a, top_b, strict=True)]
    accuracy = {}
    if labels is not None:
        truth = np.array([padded[0].labels.index(label) for label in labels])
        accuracy = {
            "accuracy_padded": float(np.mean(top_a[:, 0] == truth)),
            "accuracy_short": float(np.mean(top_b[:, 0] == truth)),
        }
    return {
        **accuracy,
        "top1_agreement": float(np.mean(top_a[:, 0] == top_b[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
        "max_abs_score_diff": float(np.abs(a - b).max()),
        "mean_abs_score_diff": float(np.abs(a - b).mean()),
        "score_scale": float(np.abs(a).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="full", help="full, tiny or a checkpoint directory")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    parser.add_argument("--clips", type=int, default=8, help="clips per length (or per class)")
    parser.add_argument("--audio-dir", type=Path, help="class folders of real clips to crop")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket", type=int, default=10, help="patch columns per length bucket")
    parser.add_argument("--output", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = (
            _random_checkpoint(args.model, Path(scratch))
            if args.model in CONFIGS
            else Path(args.model)
        )
        padded = AudioClassifier.from_pretrained(checkpoint, batch_size=args.batch_size)
        short = AudioClassifier.from_pretrained(
            checkpoint, batch_size=args.batch_size, length_bucket=args.bucket
        )
    rows = []
    for i, seconds in enumerate(args.seconds):
        if args.audio_dir is None:
            clips, labels = _clips(seconds, args.clips, seed=i), None
        else:
            clips, labels = _loudest(args.audio_dir, seconds, args.clips)
        padded_s, padded_results = _time(padded, clips, args.repeats)
        short_s, short_results = _time(short, clips, args.repeats)
        clip_frames = num_frames(clips[0].size, short.extractor.fbank_options)
        frames = bucketed_length(clip_frames, short.config, bucket=args.bucket)
        rows.append(
            {
                "benchmark": "short_clips",
                "model": args.model,
                "seconds": seconds,
                "max_length": padded.config.max_length,
                "input_frames": frames,
                "bucket": args.bucket,
                "batch_size": padded.batch_size,
                "padded_s_per_batch": padded_s,
                "short_s_per_batch": short_s,
                "speedup": padded_s / short_s,
                **_agreement(padded_results, short_results, labels),
                "clips": len(clips),
                "device": jax.devices()[0].device_kind,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "jax": jax.__version__,
                "python": platform.python_version(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as file:
            file.writelines(json.dumps(row) + "\n" for row in rows)
    print(
        f"\n{'clip':>6} {'frames':>7} {'padded s':>9} {'short s':>8} {'speed-up':>8} "
        f"{'top-1':>6} {'top-5':>6} {'max |d|':>9}"
    )
    for r in rows:
        print(
            f"{r['seconds']:>5g}s {r['input_frames']:>7} {r['padded_s_per_batch']:>9.3f} "
            f"{r['short_s_per_batch']:>8.3f} {r['speedup']:>7.1f}x {r['top1_agreement']:>6.2f} "
            f"{r['top5_overlap']:>6.2f} {r['max_abs_score_diff']:>9.2e}"
        )


if __name__ == "__main__":
    main()
