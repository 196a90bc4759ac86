#!/usr/bin/env python3
"""Full-size AST forward: JAX (jit, float32 / bfloat16) vs transformers PyTorch (SDPA / eager).

Same random weights for every backend, same machine, same run. Per configuration: median ms per
clip over `--repeats` timed calls after `--warmup` untimed ones (JAX: `block_until_ready`), the
ratio to transformers SDPA at the same batch size, and for JAX the jit compile time, measured
separately (`lower().compile()`). One JSON line per configuration is appended to `--output`, and a
table is printed.

Usage:
    python benchmarks/bench_model.py --batch-sizes 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import flax
import jax
import numpy as np
import torch
import transformers

from ast_jax import ASTConfig, ASTForAudioClassification, params_from_hf

BACKENDS = ("jax-float32", "jax-bfloat16", "torch-sdpa", "torch-eager")
RESULTS = Path(__file__).parent / "results" / "model.jsonl"


def _timed(call: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_models(seed: int) -> dict[str, torch.nn.Module]:
    """transformers' full-size AudioSet classifier, SDPA and eager attention, same weights."""
    torch.manual_seed(seed)
    models = {}
    for attention in ("sdpa", "eager"):
        hf_config = transformers.ASTConfig(num_labels=527, attn_implementation=attention)
        models[f"torch-{attention}"] = transformers.ASTForAudioClassification(hf_config).eval()
    models["torch-eager"].load_state_dict(models["torch-sdpa"].state_dict())
    return models


def _bench_jax(params, x: np.ndarray, dtype: str, warmup: int, repeats: int) -> dict:
    config = ASTConfig(labels=tuple(f"LABEL_{i}" for i in range(527)), dtype=dtype)
    model = ASTForAudioClassification(config)
    x = jax.device_put(x)
    start = time.perf_counter()
    compiled = jax.jit(model.apply).lower({"params": params}, x).compile()
    compile_s = time.perf_counter() - start
    seconds = _timed(
        lambda: compiled({"params": params}, x).logits.block_until_ready(), warmup, repeats
    )
    return {"seconds": seconds, "compile_s": compile_s}


def _bench_torch(model: torch.nn.Module, x: np.ndarray, warmup: int, repeats: int) -> dict:
    inputs = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            return model(inputs).logits

    return {"seconds": _timed(call, warmup, repeats), "compile_s": None}


def _environment() -> dict:
    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "jax_device": f"{device.platform}:{device.device_kind}",
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    environment = _environment()
    torch_models = _torch_models(seed=0)
    state_dict = {k: v.numpy() for k, v in torch_models["torch-sdpa"].state_dict().items()}
    params = params_from_hf(state_dict, ASTConfig(labels=tuple(f"L{i}" for i in range(527))))
    params = jax.device_put(params)
    rows = []
    for batch in args.batch_sizes:
        x = np.random.default_rng(0).normal(0, 0.5, (batch, 1024, 128)).astype(np.float32)
        results = {}
        for backend in args.backends:
            if backend.startswith("jax"):
                dtype = backend.removeprefix("jax-")
                results[backend] = _bench_jax(params, x, dtype, args.warmup, args.repeats)
            else:
                results[backend] = _bench_torch(torch_models[backend], x, args.warmup, args.repeats)
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
                "speedup_vs_torch_sdpa": baseline / result["seconds"] if baseline else None,
                "compile_s": result["compile_s"],
                **environment,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
    _print_table(rows, environment)


def _print_table(rows: list[dict], environment: dict) -> None:
    print(
        f"\n{environment['cpu']} | jax device {environment['jax_device']} | "
        f"torch threads {environment['torch_threads']} | {environment['versions']}"
    )
    print(f"{'backend':<14}{'batch':>6}{'ms/clip':>10}{'x vs sdpa':>11}{'compile s':>11}")
    for row in rows:
        ratio = row["speedup_vs_torch_sdpa"]
        compile_s = row["compile_s"]
        print(
            f"{row['backend']:<14}{row['batch']:>6}{row['ms_per_clip']:>10.1f}"
            f"{(f'{ratio:.2f}' if ratio else '-'):>11}"
            f"{(f'{compile_s:.1f}' if compile_s is not None else '-'):>11}"
        )


if __name__ == "__main__":
    main()
