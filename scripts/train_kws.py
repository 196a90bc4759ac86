#!/usr/bin/env python3
"""Reproduce the bundled keyword-spotting model (``ast_jax/models/kws12``) from nothing.

1. Synthesise the dataset with espeak-ng (`make_kws_dataset.py`; skipped if ``DATA`` exists).
2. Train the small AST of ``kws12_config.json`` from scratch with ``ast-jax finetune`` in two
   stages (the recipes below), validating on the held-out voices (no model selection on them: the
   shipped model is the weight average of stage 2's last four epochs, fixed in advance).
3. Copy the weight-averaged model into the package, with the measured numbers in ``training.json``
   (read by the model card), and write example clips of held-out voices to ``examples/audio``.

    .venv/bin/python scripts/train_kws.py   # data/kws, runs/kws12; about 25 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_MODEL = ROOT / "ast_jax" / "models" / "kws12"
EXAMPLE_WORDS = ("yes", "stop", "left", "go")
# Stage 1, from scratch: Adam (0.95, 0.999) with L2 5e-7 as the original; a short linear warm-up;
# the Speech Commands decay (x0.85 per epoch) from epoch 10; mild SpecAugment, the Speech Commands
# noise and time shift.
STAGE_1 = [
    "--epochs", "12", "--batch-size", "64", "--lr", "5e-4",
    "--warmup-steps", "150", "--warmup-every", "1",
    "--lr-decay-start", "10", "--lr-decay-every", "1", "--lr-decay", "0.85",
    "--freqm", "12", "--timem", "12", "--noise", "0.1", "--time-shift", "10",
    "--seed", "0", "--stats", "dataset", "--quiet",
]  # fmt: skip
# Stage 2, from stage 1's model: the model still underfits, so SpecAugment and noise are off (time
# shift only); constant rate for 5 epochs, then x0.8 per epoch; weight average of the last 4.
STAGE_2 = [
    "--epochs", "14", "--batch-size", "64", "--lr", "4e-4", "--warmup-steps", "0",
    "--lr-decay-start", "5", "--lr-decay-every", "1", "--lr-decay", "0.8",
    "--freqm", "0", "--timem", "0", "--noise", "0", "--time-shift", "10",
    "--weight-average", "11", "14", "--seed", "1", "--stats", "model", "--quiet",
]  # fmt: skip


def run(*args: str | Path) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(arg) for arg in args], check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "kws")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "kws12")
    args = parser.parse_args(argv)

    if not (args.data / "stats.json").is_file():
        run(sys.executable, ROOT / "scripts" / "make_kws_dataset.py", args.data)
    started = time.perf_counter()
    finetune = [sys.executable, "-m", "ast_jax.cli", "finetune", args.data / "train"]
    common = ["--val", args.data / "test", "--cache", ROOT / "data" / "cache"]
    stage_1, stage_2 = args.out / "stage1", args.out / "stage2"
    run(*finetune, "--model", ROOT / "scripts" / "kws12_config.json", "--out", stage_1, *common,
        *STAGE_1)  # fmt: skip
    run(*finetune, "--model", stage_1 / "model", "--out", stage_2, *common, *STAGE_2)
    seconds = time.perf_counter() - started
    history = [
        *json.loads((stage_1 / "history.json").read_text()),
        *json.loads((stage_2 / "history.json").read_text()),
    ]
    run(
        sys.executable, "-m", "ast_jax.cli", "evaluate", stage_2 / "model_wa",
        args.data / "test", "--cache", ROOT / "data" / "cache", "--output",
        args.out / "test_wa.json",
    )  # fmt: skip
    test = json.loads((args.out / "test_wa.json").read_text())
    PACKAGE_MODEL.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "preprocessor_config.json", "ast_jax.safetensors"):
        shutil.copy(stage_2 / "model_wa" / name, PACKAGE_MODEL / name)
    dataset = json.loads((args.data / "stats.json").read_text())
    training = {
        "train_seconds": round(seconds, 1),
        "held_out_weight_averaged": test,
        "held_out_last_epoch": {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")},
        "history": history,
        "dataset": {split: dataset[split] for split in ("train", "test")},
        "recipe": {"stage_1": STAGE_1, "stage_2": STAGE_2},
    }
    (PACKAGE_MODEL / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    for word in EXAMPLE_WORDS:
        shutil.copy(
            args.data / "test" / word / "00000.wav", ROOT / "examples" / "audio" / f"kws_{word}.wav"
        )
    print(json.dumps({"train_seconds": training["train_seconds"], "held_out": test}, indent=2))


if __name__ == "__main__":
    main()
