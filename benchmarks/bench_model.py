#!/usr/bin/env python3
"""Full-size AST forward: JAX (jit, float32 / bfloat16) vs transformers PyTorch (SDPA / eager).

Same random weights for every backend, same machine, same run. Per configuration: median ms per
clip over `--repeats` rounds, each timing one call of every backend (so a change in the machine's
load hits all alike), after `--warmup` untimed calls (JAX: `block_until_ready`), the
achieved GFLOP/s (`common.forward_flops`), the ratio to transformers SDPA at the same batch size,
and for JAX the jit compile time, measured separately (`lower().compile()`), and XLA's memory
estimate (arguments + temporaries). One JSON line per configuration is appended to `--output`,
and a table is printed.

Usage:
    python benchmarks/bench_model.py --batch-sizes 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import jax
import numpy as np
import torch
import transformers
from common import (
    AUDIOSET_CONFIG,
    RESULTS_DIR,
    append_jsonl,
    environment,
    forward_flops,
    interleaved_medians,
)

from ast_jax import ASTForAudioClassification, params_from_hf
from ast_jax.runtime.batching import per_example

# jax-float32-per-example: the batch one clip at a time (`ast_jax.per_example`), the step
# AudioClassifier runs on a single CPU device.
BACKENDS = ("jax-float32", "jax-float32-per-example", "jax-bfloat16", "torch-sdpa", "torch-eager")
RESULTS = RESULTS_DIR / "model.jsonl"
CONFIG = AUDIOSET_CONFIG


def _torch_models(seed: int) -> dict[str, torch.nn.Module]:
    """transformers' full-size AudioSet classifier, SDPA and eager attention, same weights."""
    torch.manual_seed(seed)
    models = {}
    for attention in ("sdpa", "eager"):
        hf_config = transformers.ASTConfig(num_labels=527, attn_implementation=attention)
        models[f"torch-{attention}"] = transformers.ASTForAudioClassification(hf_config).eval()
    models["torch-eager"].load_state_dict(models["torch-sdpa"].state_dict())
    return models


def _prepare_jax(
    params, x: np.ndarray, dtype: str, mapped: bool
) -> tuple[Callable[[], object], dict]:
    """A blocking call of the compiled forward (``mapped``: one example at a time), and its
    compile time and memory estimate."""
    model = ASTForAudioClassification(dataclasses.replace(CONFIG, dtype=dtype))

    def forward(params, x):
        return model.apply({"params": params}, x).logits

    x = jax.device_put(x)
    start = time.perf_counter()
    compiled = jax.jit(per_example(forward) if mapped else forward).lower(params, x).compile()
    memory = compiled.memory_analysis()
    facts = {
        "compile_s": time.perf_counter() - start,
        "memory_gb": None
        if memory is None
        else (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 1e9,
    }
    return lambda: compiled(params, x).block_until_ready(), facts


def _prepare_torch(model: torch.nn.Module, x: np.ndarray) -> tuple[Callable[[], object], dict]:
    inputs = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            return model(inputs).logits

    return call, {"compile_s": None, "memory_gb": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    env = environment(torch_threads=torch.get_num_threads())
    torch_models = _torch_models(seed=0)
    state_dict = {k: v.numpy() for k, v in torch_models["torch-sdpa"].state_dict().items()}
    params = params_from_hf(state_dict, CONFIG)
    flops = forward_flops(CONFIG)
    params = jax.device_put(params)
    rows = []
    for batch in args.batch_sizes:
        x = np.random.default_rng(0).normal(0, 0.5, (batch, 1024, 128)).astype(np.float32)
        calls, results = {}, {}
        for backend in args.backends:
            if backend.startswith("jax"):
                dtype = backend.split("-")[1]
                prepared = _prepare_jax(params, x, dtype, backend.endswith("per-example"))
            else:
                prepared = _prepare_torch(torch_models[backend], x)
            calls[backend], results[backend] = prepared
        for backend, seconds in interleaved_medians(calls, args.warmup, args.repeats).items():
            results[backend]["seconds"] = seconds
        baseline = results.get("torch-sdpa", {}).get("seconds")
        for backend, result in results.items():
            row = {
                "benchmark": "ast_model_forward",
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "backend": backend,
                "batch": batch,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "ms_per_batch": 1e3 * result["seconds"],
                "ms_per_clip": 1e3 * result["seconds"] / batch,
                "gflops": flops * batch / result["seconds"] / 1e9,
                "speedup_vs_torch_sdpa": baseline / result["seconds"] if baseline else None,
                "compile_s": result["compile_s"],
                "memory_gb": result["memory_gb"],
                **env,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    append_jsonl(args.output, rows)
    _print_table(rows, env)


def _print_table(rows: list[dict], environment: dict) -> None:
    print(
        f"\n{environment['cpu']} | jax device {environment['jax_device']} | "
        f"torch threads {environment['torch_threads']} | {environment['versions']}"
    )
    print(
        f"{'backend':<24}{'batch':>6}{'ms/clip':>10}{'GFLOP/s':>9}{'x vs sdpa':>11}"
        f"{'compile s':>11}"
    )
    for row in rows:
        ratio = row["speedup_vs_torch_sdpa"]
        compile_s = row["compile_s"]
        print(
            f"{row['backend']:<24}{row['batch']:>6}{row['ms_per_clip']:>10.1f}{row['gflops']:>9.1f}"
            f"{(f'{ratio:.2f}' if ratio else '-'):>11}"
            f"{(f'{compile_s:.1f}' if compile_s is not None else '-'):>11}"
        )


if __name__ == "__main__":
    main()
