#!/usr/bin/env python3
"""Full-size AST train step (forward, backward, Adam update): JAX vs transformers PyTorch.

Both start from the same random weights and train on the same random batch (AudioSet shape:
1024 frames x 128 mel bins, 527 classes, multi-label BCE). JAX runs ast-jax's own jitted train
step (`ast_jax.training.step.make_train_step`, with augmentation off and `optax.adam`); PyTorch
runs transformers' `ASTForAudioClassification` with SDPA attention in train mode and
`torch.optim.Adam`, on as many threads as the machine has cores. The two alternate round by
round (`common.interleaved_medians`), so a change in the machine's load hits both alike; in each
round a backend runs one untimed step before its timed one (`SETTLE_CALLS`). Reported per
configuration: median ms per example, the achieved GFLOP/s counting a training step as three
forward passes (`common.forward_flops`), the JAX/PyTorch speed ratio, JAX's compile time and the
1-min load average.

On a CPU the full-size step at batch 8 peaks at 14 GB resident and takes no less per example
(3.5 s) than at batch 2, so the default batch is 2. `--gpu` is the accelerator
configuration: bfloat16 compute (JAX: `ASTConfig.dtype`, float32 params; PyTorch: autocast),
PyTorch on CUDA, batch 64. `--tiny --dtype bfloat16` exercises that dtype plumbing on a CPU in
seconds.

    python benchmarks/bench_train.py [--batch-sizes 2] [--repeats 3]
    python benchmarks/bench_train.py --gpu

One JSON line per configuration and backend goes to `--output` (benchmarks/results/train.jsonl).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
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

from ast_jax import ASTConfig, ASTForAudioClassification, params_from_hf
from ast_jax.training.config import TrainConfig
from ast_jax.training.step import make_train_step

RESULTS = RESULTS_DIR / "train.jsonl"
# Untimed steps before each timed one. The first JAX step after a PyTorch step ran 30-50% slower
# than the steps after it (10.1 s, then 7.3, 7.1, 6.8 at batch 2), even with each framework in its
# own process; PyTorch's first step after JAX's ~5% slower. One step settles both, and a training
# loop runs one framework's steps back to back.
SETTLE_CALLS = 1
LEARNING_RATE = 1e-5  # the AST recipe's; the rate does not change the step's cost
PROBLEM_TYPE = "multi_label_classification"  # AudioSet: sigmoid BCE
# Augmentation off: the step then does what the PyTorch loop does (normalisation aside).
NO_AUGMENTATION = TrainConfig(freqm=0, timem=0, mixup=0.0, noise=0.0, time_shift=0)
# A few-layer, narrow model for checking the code paths (dtype plumbing) in seconds.
TINY_CONFIG = AUDIOSET_CONFIG.replace(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
)


def train_flops(config: ASTConfig) -> int:
    """FLOPs of one example's training step: the forward pass, and twice that for the backward
    pass (gradients with respect to activations and to weights); the Adam update is negligible."""
    return 3 * forward_flops(config)


def _batch(config: ASTConfig, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(B, T, F)`` features on the normalised scale and ``(B, C)`` multi-hot targets."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((batch, config.max_length, config.num_mel_bins), np.float32)
    targets = (rng.random((batch, config.num_labels)) < 0.02).astype(np.float32)
    return features, targets


def _torch_model(config: ASTConfig, seed: int, device: str) -> torch.nn.Module:
    """transformers' classifier of ``config`` with SDPA attention, random weights, train mode."""
    torch.manual_seed(seed)
    hf_config = transformers.ASTConfig(
        **(config.to_hf_dict() | {"problem_type": PROBLEM_TYPE}), attn_implementation="sdpa"
    )
    return transformers.ASTForAudioClassification(hf_config).to(device).train()


def _prepare_jax(
    config: ASTConfig, state_dict: dict[str, np.ndarray], features: np.ndarray, targets: np.ndarray
) -> tuple[Callable[[], object], float]:
    """A blocking call of one JAX train step (it feeds the step its own updated params and
    optimiser state, which the step donates), and the step's compile seconds."""
    model = ASTForAudioClassification(config)
    optimizer = optax.adam(LEARNING_RATE)
    params = jax.device_put(params_from_hf(state_dict, config))
    # mean 0, std 0.5: the step's normalisation (x - mean) / (2 std) leaves the features as they are
    step = make_train_step(
        model, optimizer, NO_AUGMENTATION, problem_type=PROBLEM_TYPE, mean=0.0, std=0.5
    )
    batch = jax.device_put(
        {"features": features, "targets": targets, "mask": np.ones(len(features), np.float32)}
    )
    state = [params, optimizer.init(params)]
    rng = jax.random.key(0)
    start = time.perf_counter()
    compiled = step.lower(*state, batch, rng).compile()
    compile_s = time.perf_counter() - start

    def call() -> None:
        state[0], state[1], metrics = compiled(*state, batch, rng)
        jax.block_until_ready(metrics)

    return call, compile_s


def _prepare_torch(
    model: torch.nn.Module, features: np.ndarray, targets: np.ndarray, dtype: str, device: str
) -> Callable[[], object]:
    """A blocking call of one PyTorch train step: forward (autocast for bfloat16), BCE loss,
    backward, Adam update."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    inputs = torch.from_numpy(features).to(device)
    labels = torch.from_numpy(targets).to(device)
    autocast = (
        torch.autocast(device_type=device, dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else nullcontext()
    )

    def call() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(input_values=inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return call


def _rows(
    seconds: dict[str, float], batch: int, config: ASTConfig, compile_s: float, context: dict
) -> list[dict[str, Any]]:
    """One result row per backend."""
    flops = train_flops(config) * batch
    return [
        {
            "benchmark": "ast_train_step",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backend": backend,
            "batch": batch,
            "ms_per_step": 1e3 * value,
            "ms_per_example": 1e3 * value / batch,
            "gflops": flops / value / 1e9,
            "speedup_vs_torch": seconds["torch-sdpa"] / value,
            "compile_s": compile_s if backend == "jax" else None,
            **context,
        }
        for backend, value in seconds.items()
    ]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 2 (64 with --gpu)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), help="default float32")
    parser.add_argument(
        "--gpu", action="store_true", help="PyTorch on CUDA, bfloat16, batch 64 (JAX: its backend)"
    )
    parser.add_argument("--tiny", action="store_true", help="a 2-layer 64-wide model (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.batch_sizes = args.batch_sizes or [64 if args.gpu else 2]
    args.dtype = args.dtype or ("bfloat16" if args.gpu else "float32")
    return args


def main() -> None:
    args = _parse_args()
    if args.gpu:
        # Let PyTorch share the card: JAX would otherwise take 75% of its memory at its first use.
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")
    device = "cuda" if args.gpu else "cpu"
    torch.set_num_threads(os.cpu_count() or 1)
    base = TINY_CONFIG if args.tiny else AUDIOSET_CONFIG
    config = dataclasses.replace(base, dtype=args.dtype)
    env = environment(torch_threads=torch.get_num_threads(), torch_device=device)
    torch_model = _torch_model(base, seed=0, device=device)
    state_dict = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    rows = []
    for batch in args.batch_sizes:
        features, targets = _batch(config, batch, seed=batch)
        jax_call, compile_s = _prepare_jax(config, state_dict, features, targets)
        calls = {
            "jax": jax_call,
            "torch-sdpa": _prepare_torch(torch_model, features, targets, args.dtype, device),
        }
        seconds = interleaved_medians(calls, args.warmup, args.repeats, settle=SETTLE_CALLS)
        context = {
            "model": "tiny" if args.tiny else "full",
            "dtype": args.dtype,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "load_average": os.getloadavg(),
            **env,
        }
        for row in _rows(seconds, batch, config, compile_s, context):
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in env}), flush=True)
    append_jsonl(args.output, rows)


if __name__ == "__main__":
    main()
