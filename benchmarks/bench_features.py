"""Feature extraction speed: ast-jax's NumPy and JAX extractors vs transformers' extractor.

All run in this process on the same 10-s clips (AudioSet settings: 1024 frames, 128 mel bins).
Without torchaudio installed, transformers uses its NumPy path, the one this compares against.
The JAX extractor (`ast_jax.jax_features.extract_features`, jitted) is timed after compilation,
including the host-to-device copy; its compile time is reported apart.

    .venv/bin/python benchmarks/bench_features.py [--batch-sizes 1 32] [--repeats 7]

Prints a table and appends one JSON line per configuration to benchmarks/results/features.jsonl.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

import ast_jax
from ast_jax.jax_features import extract_features

RESULTS = Path(__file__).parent / "results" / "features.jsonl"
SAMPLING_RATE = 16000
CLIP_SECONDS = 10.0


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: caches, thread pool, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _clips(batch_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    samples = int(CLIP_SECONDS * SAMPLING_RATE)
    t = np.arange(samples) / SAMPLING_RATE
    speechlike = np.sin(2 * np.pi * 220 * t * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t)))
    noise = rng.standard_normal((batch_size, samples))
    return (0.3 * speechlike + 0.05 * noise).astype(np.float32)  # (B, S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import transformers
    from transformers import ASTFeatureExtractor

    ours = ast_jax.FeatureExtractor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HF warns about the all-zero mel filter (index 3)
        theirs = ASTFeatureExtractor()
    environment = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "jax_device": str(jax.devices()[0]),
        "transformers": transformers.__version__,
    }
    jax_extract = jax.jit(extract_features, static_argnums=1)
    RESULTS.parent.mkdir(exist_ok=True)
    print(
        f"{'batch':>5} {'numpy ms/clip':>14} {'jax ms/clip':>12} {'transformers ms/clip':>21} "
        f"{'numpy speed-up':>15} {'jax compile s':>14}"
    )
    for batch_size in args.batch_sizes:
        clips = _clips(batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_s = _median_seconds(
                functools.partial(ours, clips, sampling_rate=SAMPLING_RATE), args.repeats
            )
            start = time.perf_counter()
            jax_extract.lower(clips, ours).compile()
            compile_s = time.perf_counter() - start
            jax_s = _median_seconds(
                lambda clips=clips: jax_extract(clips, ours).block_until_ready(), args.repeats
            )
            theirs_s = _median_seconds(
                functools.partial(
                    theirs, list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np"
                ),
                max(3, args.repeats // 2),
            )
        record = {
            "benchmark": "features",
            "batch_size": batch_size,
            "clip_seconds": CLIP_SECONDS,
            "ast_jax_ms_per_clip": 1e3 * ours_s / batch_size,
            "ast_jax_jax_ms_per_clip": 1e3 * jax_s / batch_size,
            "ast_jax_jax_compile_s": compile_s,
            "transformers_ms_per_clip": 1e3 * theirs_s / batch_size,
            "ast_jax_clips_per_s": batch_size / ours_s,
            "speedup": theirs_s / ours_s,
            "jax_speedup": theirs_s / jax_s,
            **environment,
        }
        with RESULTS.open("a") as file:
            file.write(json.dumps(record) + "\n")
        print(
            f"{batch_size:>5} {record['ast_jax_ms_per_clip']:>14.2f} "
            f"{record['ast_jax_jax_ms_per_clip']:>12.2f} "
            f"{record['transformers_ms_per_clip']:>21.2f} {record['speedup']:>14.1f}x "
            f"{compile_s:>14.2f}"
        )


if __name__ == "__main__":
    main()
