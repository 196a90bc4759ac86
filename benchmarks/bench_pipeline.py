#!/usr/bin/env python3
"""The streaming training pipeline: memory of an epoch against the dataset size, decoding
throughput, and training speed with the real pipeline against in-memory batches.

1. Peak RSS of one training epoch (``ast-jax finetune``, streaming, a tiny model) on ``--small``
   and ``--large`` ten-second clips, each in a fresh process: the pipeline holds paths and
   targets only, so the two should be within a few hundred MB whatever the dataset size.
2. Clips per second one host process decodes, resamples and pads (`AudioStream.epoch`), with 0,
   1 and 2 grain workers.
3. Train steps per second of a model fed by the real pipeline (decode in a worker, fbank and
   augmentation on the device) as a fraction of steps per second on in-memory features (the step
   alone), after compilation. ``--train-batch`` sets the batch (the full-size model's step at
   batch 8 peaks at about 14 GB on a CPU).

Clips are written once to ``--data`` (int16 WAV, 16 kHz; about 320 kB each). Results go to
``--output`` as JSON lines and are printed as a table.

    .venv/bin/python benchmarks/bench_pipeline.py --small 300 --large 3000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from common import SAMPLING_RATE, append_jsonl, environment

CLIP_SECONDS = 10.0
TINY = {
    "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
    "labels": ["a", "b", "c", "d"],
}  # fmt: skip


def write_clips(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` ten-second clips in ``folder/<label>/``, four labels; existing ones are kept."""
    rng = np.random.default_rng(seed)
    samples = int(CLIP_SECONDS * SAMPLING_RATE)
    t = np.arange(samples) / SAMPLING_RATE
    for i in range(count):
        path = folder / "abcd"[i % 4] / f"{i:06d}.wav"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tone = 0.2 * np.sin(2 * np.pi * (200 + 300 * (i % 4) + rng.uniform(0, 50)) * t)
        clip = tone + 0.02 * rng.standard_normal(samples)
        soundfile.write(path, clip.astype(np.float32), SAMPLING_RATE, subtype="PCM_16")
    return folder


def _subset(folder: Path, count: int) -> Path:
    """A CSV manifest of the first ``count`` clips."""
    rows = sorted(folder.glob("*/*.wav"))[:count]
    manifest = folder / f"first_{count}.csv"
    manifest.write_text("".join(f"{p.relative_to(folder)},{p.parent.name}\n" for p in rows))
    return manifest


_EPOCH = """
import json, resource, sys
from ast_jax.cli.main import main
code = main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps({"code": code, "peak_rss_gb": peak}))
"""


def epoch_memory(manifest: Path, config: Path, out: Path) -> dict:
    """Peak RSS (GB) of one streaming epoch in a fresh process."""
    arguments = [
        "finetune", str(config), str(manifest), "-o", str(out), "--epochs", "1",
        "--batch-size", "16", "--warmup-steps", "0", "--stats", "audioset", "-q",
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _EPOCH, *arguments], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {**report, "seconds": round(time.perf_counter() - started, 1)}


def decode_throughput(manifest: Path, workers: int, limit: int) -> float:
    """Clips per second through `AudioStream.epoch` (decode, resample, pad)."""
    from ast_jax.frontend.extractor import FeatureExtractor
    from ast_jax.training.datasets import load_dataset
    from ast_jax.training.pipeline import AudioStream

    dataset = load_dataset(manifest)
    stream = AudioStream(dataset, FeatureExtractor(), batch_size=16, workers=workers)
    batches = stream.epoch(0)
    next(batches)  # the workers are up: time the steady state
    started, clips = time.perf_counter(), 0
    for batch in batches:
        clips += len(batch["mask"])
        if clips >= limit:
            break
    return clips / (time.perf_counter() - started)


def training_speed(manifest: Path, model: str, steps: int, batch: int) -> dict:
    """Steps/s at ``batch`` with the real pipeline and with in-memory features, same model."""
    import jax

    from ast_jax.config import ASTConfig
    from ast_jax.frontend.extractor import FeatureExtractor
    from ast_jax.model.attention import resolve_attention
    from ast_jax.model.modules import ASTForAudioClassification
    from ast_jax.model.params import init_params
    from ast_jax.training.config import TrainConfig
    from ast_jax.training.datasets import load_dataset
    from ast_jax.training.loader import FeatureBatches
    from ast_jax.training.optimizer import make_optimizer
    from ast_jax.training.pipeline import AudioStream
    from ast_jax.training.step import make_train_step

    dataset = load_dataset(manifest)
    overrides = {} if model == "full" else {k: v for k, v in TINY.items() if k != "labels"}
    config = ASTConfig(labels=dataset.labels, **overrides)
    extractor = FeatureExtractor()
    train_config = TrainConfig(batch_size=batch, warmup_steps=0)
    optimizer = make_optimizer(train_config, 100)
    step = make_train_step(
        ASTForAudioClassification(resolve_attention(config)), optimizer, train_config,
        problem_type="single_label_classification", mean=extractor.mean, std=extractor.std,
        extractor=extractor,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    features = rng.normal(-5, 4, (batch * (steps + 1), 1024, 128)).astype(np.float32)
    sources = {
        "in_memory": FeatureBatches(
            features,
            np.resize(dataset.targets, (len(features), len(dataset.labels))),
            batch_size=batch,
        ),
        "pipeline": AudioStream(dataset, extractor, batch_size=batch, workers=1),
    }
    result = {}
    for name, source in sources.items():
        params = init_params(config, 0)
        opt_state = optimizer.init(params)
        batches = source.epoch(0)
        params, opt_state, _ = step(
            params, opt_state, jax.device_put(next(batches)), jax.random.key(0)
        )
        jax.block_until_ready(params)  # compiled
        started = time.perf_counter()
        for i in range(steps):
            params, opt_state, _ = step(
                params, opt_state, jax.device_put(next(batches)), jax.random.key(i + 1)
            )
        jax.block_until_ready(params)
        result[name] = steps / (time.perf_counter() - started)
    result["ratio"] = result["pipeline"] / result["in_memory"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=300, help="clips of the small epoch")
    parser.add_argument("--large", type=int, default=3000, help="clips of the large epoch")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "ast_jax_bench")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per source")
    parser.add_argument("--model", choices=("full", "tiny"), default="full")
    parser.add_argument("--train-batch", type=int, default=2, help="batch of the speed test")
    parser.add_argument("--output", type=Path, help="JSON lines file to append to")
    args = parser.parse_args()
    folder = write_clips(args.data / "clips", args.large)
    config = args.data / "tiny_config.json"
    from ast_jax.config import ASTConfig

    ASTConfig(**TINY).to_json_file(config)
    records = []
    for count in (args.small, args.large):
        with tempfile.TemporaryDirectory() as out:
            memory = epoch_memory(_subset(folder, count), config, Path(out) / "run")
        records.append({"measure": "epoch_memory", "clips": count, **memory})
        print(f"one epoch, {count} clips: peak RSS {memory['peak_rss_gb']:.2f} GB "
              f"({memory['seconds']} s)", flush=True)  # fmt: skip
    for workers in (0, 1, 2):
        rate = decode_throughput(_subset(folder, args.small), workers, limit=min(args.small, 160))
        records.append({"measure": "decode", "workers": workers, "clips_per_second": rate})
        print(f"decode, {workers} workers: {rate:.1f} clips/s", flush=True)
    speed = training_speed(_subset(folder, args.small), args.model, args.steps, args.train_batch)
    records.append(
        {"measure": "train_steps", "model": args.model, "batch": args.train_batch, **speed}
    )
    rates = f"pipeline {speed['pipeline']:.3f} steps/s, in memory {speed['in_memory']:.3f}"
    print(f"{args.model} model, batch {args.train_batch}: {rates}, ratio {speed['ratio']:.2f}")
    if args.output is not None:
        env = {**environment(), "load": os.getloadavg()}
        append_jsonl(args.output, [{**record, **env} for record in records])


if __name__ == "__main__":
    main()
