#!/usr/bin/env python3
"""Full-size AST bf16 forward throughput on one accelerator under several XLA flag sets.

Each flag set runs in its own process (XLA reads `XLA_FLAGS` once, at backend start) on the same
random weights; prints clips/s and achieved TFLOP/s per flag set and batch size, and writes
one JSON line per row to `--output`. Used to pick the GPU defaults that RESULTS.md quotes.

    python benchmarks/bench_xla_flags.py --output results/xla_flags.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

VARIANTS = {
    "default": "",
    "cublas-only": "--xla_gpu_enable_triton_gemm=false",
    "cublaslt": "--xla_gpu_enable_cublaslt=true",
    "no-triton-cublaslt": "--xla_gpu_enable_triton_gemm=false --xla_gpu_enable_cublaslt=true",
}


def measure(batches: list[int], attention: str, repeats: int) -> list[dict]:
    """In this process: clips/s of the bf16 forward for each batch size."""
    import jax
    import numpy as np
    from common import forward_flops, median_seconds

    from ast_jax import ASTConfig, ASTForAudioClassification

    config = ASTConfig(labels=tuple(f"L{i}" for i in range(527)))
    model = ASTForAudioClassification(replace(config, dtype="bfloat16", attention=attention))
    x0 = np.zeros((1, config.max_length, config.num_mel_bins), np.float32)
    params = jax.jit(model.init)(jax.random.key(0), x0)["params"]
    forward = jax.jit(lambda params, x: model.apply({"params": params}, x).logits)
    rows = []
    for batch in batches:
        rng = np.random.default_rng(batch)
        shape = (batch, config.max_length, config.num_mel_bins)
        xs = [jax.device_put(rng.normal(0, 0.5, shape).astype(np.float32)) for _ in range(2)]
        compiled = forward.lower(params, xs[0]).compile()
        turn = iter(range(10**9))
        seconds = median_seconds(
            lambda: compiled(params, xs[next(turn) % 2]).block_until_ready(),  # noqa: B023
            warmup=2,
            repeats=repeats,
        )
        rows.append({
            "batch": batch,
            "attention": attention,
            "clips_per_s": batch / seconds,
            "tflops": forward_flops(config) * batch / seconds / 1e12,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--attention", default="cudnn")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.batch_sizes, args.attention, args.repeats)))
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        env = {**os.environ, "XLA_FLAGS": VARIANTS[variant]}
        command = [sys.executable, __file__, "--child", "--output", str(args.output),
                   "--attention", args.attention, "--repeats", str(args.repeats),
                   "--batch-sizes", *map(str, args.batch_sizes)]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            print(f"{variant}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        with args.output.open("a", encoding="utf-8") as file:
            for row in rows:
                row = {"variant": variant, "xla_flags": VARIANTS[variant], **row}
                file.write(json.dumps(row) + "\n")
                print(
                    f"{variant:<20}{row['batch']:>6}{row['clips_per_s']:>10.1f} clips/s"
                    f"{row['tflops']:>8.1f} TFLOP/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
