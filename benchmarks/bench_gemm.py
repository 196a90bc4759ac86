#!/usr/bin/env python3
"""This machine's measured float32 matrix-product rate through JAX (XLA's CPU/GPU GEMM).

The peak that RESULTS.md divides the model's GFLOP/s by: the best median rate over square and
AST-shaped products (random operands; zeros can run faster). One JSON line per shape, and the
peak, go to `--output`.

    python benchmarks/bench_gemm.py --output results/gemm.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import append_jsonl, environment, median_seconds

# (M, K, N): squares, and the full-size AST's projections for one clip (1214 tokens) and eight.
SHAPES = (
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (4096, 4096, 4096),
    (1214, 768, 2304),
    (1214, 3072, 768),
    (9712, 768, 3072),
)


def measure(shape: tuple[int, int, int], repeats: int) -> float:
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = jax.device_put(rng.standard_normal((m, k), np.float32))
    b = jax.device_put(rng.standard_normal((k, n), np.float32))
    product = jax.jit(lambda a, b: jnp.matmul(a, b, precision="highest"))
    seconds = median_seconds(lambda: product(a, b).block_until_ready(), warmup=2, repeats=repeats)
    return 2 * m * k * n / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = [
        {"benchmark": "gemm", "shape": list(shape), "gflops": measure(shape, args.repeats)}
        for shape in SHAPES
    ]
    peak = {"benchmark": "gemm_peak", "gflops": max(row["gflops"] for row in rows), **environment()}
    for row in rows:
        print(f"{'x'.join(map(str, row['shape'])):>16} {row['gflops']:8.1f} GFLOP/s")
    print(f"peak: {peak['gflops']:.1f} GFLOP/s float32 on {peak['jax_device']} ({peak['cpu']})")
    if args.output:
        append_jsonl(args.output, [*rows, peak])
    print(json.dumps(peak))


if __name__ == "__main__":
    main()
