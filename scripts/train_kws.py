#!/usr/bin/env python3
"""Reproduce the bundled keyword-spotting model (``ast_jax/models/kws12``) from nothing.

1. Synthesise the dataset with espeak-ng (`make_kws_dataset.py`, 3,000 training clips per class:
   2,000 by espeak-ng's own voice variants, 1,000 by random ones; skipped if ``DATA`` already
   holds it).
2. Carve a validation split of 10 training voice variants out of the training set
   (`kws_val_split.py`: ``DATA/fit.csv``, ``DATA/val.csv``).
3. Compute and cache the log-mel features of the three splits (timed apart from training).
4. Train the small AST of ``kws12_config.json`` from scratch with ``ast-jax finetune`` in one
   stage (``RECIPE``) on all training voices. The shipped model is the weight average of the last
   epochs, fixed in advance (``RECIPE``'s ``--weight-average``); nothing is picked by the test
   split. ``--validate`` instead trains on the training voices minus the validation split and
   reports that split after every epoch: the run the recipe was checked with.
5. Evaluate it once on the held-out test voices, copy it into the package with the measured numbers
   in ``training.json`` (read by the model card), and write example clips of held-out voices to
   ``examples/audio``.

    .venv/bin/python scripts/train_kws.py   # data/kws, runs/kws12

On 2 CPU cores: about 3.5 min of synthesis, 20 s of features, then about 25 min of training
(25.2 min measured; ``training.json``'s ``train_seconds``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import default_extractor
from ast_jax.training.datasets import load_dataset
from ast_jax.training.features import compute_features

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_MODEL = ROOT / "ast_jax" / "models" / "kws12"
CONFIG = ROOT / "scripts" / "kws12_config.json"
EXAMPLE_WORDS = ("yes", "stop", "left", "go")
TRAIN_PER_CLASS = 800  # clips per class of the training split (make_kws_dataset's default is 500)
EXTRA_TRAIN_PER_CLASS = 1200  # more clips per class, drawn after the test split (2,000 in all)
RANDOM_PER_CLASS = 1000  # and clips per class spoken by random voice variants (3,000 in all)
# One stage from scratch: Adam (0.95, 0.999) with L2 5e-7 (the original AST optimiser); a linear
# warm-up to 1e-3 over 300 updates, then x0.77 per epoch from epoch 4; SpecAugment (6 of 64 mel
# bins, 12 frames), the Speech Commands noise and time shift, and a random frequency warp of up to
# +-12% (a vocal-tract-length perturbation for unseen voices); the last 4 epochs' weights averaged.
# 14 epochs of 36,000 clips: 504,000 clip updates, as many as 21 epochs of the 24,000 named ones.
RECIPE = [
    "--epochs", "14", "--batch-size", "64", "--lr", "1e-3",
    "--warmup-steps", "300", "--warmup-every", "1",
    "--lr-decay-start", "3", "--lr-decay-every", "1", "--lr-decay", "0.77",
    "--freqm", "6", "--timem", "12", "--noise", "0.1", "--time-shift", "10", "--freq-warp", "0.12",
    "--weight-average", "11", "14", "--seed", "0", "--stats", "dataset", "--quiet",
]  # fmt: skip


def run(*args: str | Path) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(arg) for arg in args], check=True, cwd=ROOT)


def dataset_ready(
    data: Path, *, clips_per_class: int, random_per_class: int, conditions: bool = False
) -> bool:
    """Whether ``data`` holds the dataset a recipe needs: its ``stats.json`` counts
    ``clips_per_class`` training clips per class, ``random_per_class`` of them by random voice
    variants, and, with ``conditions``, recording-condition augmentation."""
    try:
        stats = json.loads((data / "stats.json").read_text())
    except FileNotFoundError:
        return False
    train = stats["train"]
    return (
        train["clips"]["yes"] == clips_per_class
        and train.get("random_per_class") == random_per_class
        and (not conditions or stats.get("conditions") is True)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "kws")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "kws12")
    parser.add_argument(
        "--validate",
        action="store_true",
        help="train on fit.csv and report val.csv every epoch (into OUT/validate; not shipped)",
    )
    args = parser.parse_args(argv)
    cache = ROOT / "data" / "cache"

    started = time.perf_counter()
    clips_per_class = TRAIN_PER_CLASS + EXTRA_TRAIN_PER_CLASS + RANDOM_PER_CLASS
    if not dataset_ready(
        args.data, clips_per_class=clips_per_class, random_per_class=RANDOM_PER_CLASS
    ):
        run(sys.executable, ROOT / "scripts" / "make_kws_dataset.py", args.data,
            "--train-per-class", str(TRAIN_PER_CLASS),
            "--extra-train-per-class", str(EXTRA_TRAIN_PER_CLASS),
            "--random-per-class", str(RANDOM_PER_CLASS))  # fmt: skip
    run(sys.executable, ROOT / "scripts" / "kws_val_split.py", args.data)
    synthesis_seconds = round(time.perf_counter() - started, 1)

    # The features ``ast-jax finetune --in-memory`` reads from the cache (unnormalised, so
    # their key does not depend on the normalisation statistics computed in training).
    started = time.perf_counter()
    config = ASTConfig.from_json_file(CONFIG)
    sizing = default_extractor(config)
    for split in ("fit.csv", "val.csv") if args.validate else ("train", "test"):
        compute_features(load_dataset(args.data / split).paths, sizing, cache)
    feature_seconds = round(time.perf_counter() - started, 1)

    # 36,000 one-second clips fit in RAM: the in-memory path computes their features once (no
    # mixup in this recipe), where streaming would decode them again every epoch.
    finetune = [
        sys.executable,
        "-m",
        "ast_jax.cli",
        "finetune",
        "--in-memory",
        "--cache",
        cache,
        CONFIG,
    ]
    if args.validate:
        fit, val = args.data / "fit.csv", args.data / "val.csv"
        run(*finetune, fit, "--val", val, *RECIPE, "-o", args.out / "validate")
        return
    stage = args.out / "train"
    started = time.perf_counter()
    run(*finetune, args.data / "train", *RECIPE, "-o", stage)
    train_seconds = round(time.perf_counter() - started, 1)
    history = json.loads((stage / "history.json").read_text())
    run(
        sys.executable, "-m", "ast_jax.cli", "evaluate", stage / "model_wa", args.data / "test",
        "--output", args.out / "test_wa.json",
    )  # fmt: skip
    test = json.loads((args.out / "test_wa.json").read_text())
    PACKAGE_MODEL.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "preprocessor_config.json", "ast_jax.safetensors"):
        shutil.copy(stage / "model_wa" / name, PACKAGE_MODEL / name)
    dataset = json.loads((args.data / "stats.json").read_text())
    training = {
        "train_seconds": train_seconds,
        "synthesis_seconds": synthesis_seconds,
        "feature_seconds": feature_seconds,
        "held_out_weight_averaged": test,
        "history": history,
        "dataset": {split: dataset[split] for split in ("train", "test")},
        "validation_split": json.loads((args.data / "val_split.json").read_text()),
        "recipe": RECIPE,
    }
    (PACKAGE_MODEL / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    for word in EXAMPLE_WORDS:
        shutil.copy(
            args.data / "test" / word / "00000.wav", ROOT / "examples" / "audio" / f"kws_{word}.wav"
        )
    print(json.dumps({"train_seconds": train_seconds, "held_out": test}, indent=2))


if __name__ == "__main__":
    main()
