"""The ``finetune`` and ``evaluate`` subcommands of the ``ast-jax`` command line.

Kept apart from `ast_jax.cli`, which only registers them, so the training command line is one
module next to the training code it drives.

Exit codes as the rest of the command line: 0 success, 2 the command cannot run (bad data, model or
options).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ast_jax.finetune import evaluate_model, finetune
from ast_jax.sharding import data_mesh
from ast_jax.train import RECIPES, TrainConfig

__all__ = ["add_commands"]

_TRAIN_ERRORS = (OSError, ValueError, ImportError)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's settings (if any), overridden by the options given."""

    settings = dict(RECIPES[args.recipe]) if args.recipe else {}
    options = {
        "epochs": args.epochs, "batch_size": args.batch_size, "accumulate": args.accumulate,
        "learning_rate": args.lr, "warmup_steps": args.warmup_steps,
        "warmup_every": args.warmup_every, "lr_decay_start": args.lr_decay_start,
        "lr_decay_every": args.lr_decay_every, "lr_decay": args.lr_decay, "freqm": args.freqm,
        "timem": args.timem, "mixup": args.mixup, "noise": args.noise,
        "time_shift": args.time_shift, "freq_warp": args.freq_warp, "seed": args.seed,
        "weight_average": args.weight_average,
    }  # fmt: skip
    settings.update({name: value for name, value in options.items() if value is not None})
    return TrainConfig(**settings)


def _finetune(args: argparse.Namespace) -> int:
    try:
        train_config = _train_config(args)
        result = finetune(
            args.data, args.model, args.out, train_config,
            validation=args.val, validation_fraction=args.val_fraction, stats=args.stats,
            cache_dir=args.cache, resume=args.resume,
            mesh=data_mesh() if args.data_parallel else None, progress=not args.quiet,
        )  # fmt: skip
    except _TRAIN_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    last = result.history[-1]
    shown = {k: round(v, 4) for k, v in last.items() if isinstance(v, float)}
    print(f"{args.out / 'model'}: {shown}")
    if result.averaged_params is not None:
        print(f"{args.out / 'model_wa'}: weight average of epochs {train_config.weight_average}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    try:
        results = evaluate_model(
            args.model, args.data, cache_dir=args.cache, batch_size=args.batch_size
        )
    except _TRAIN_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(results, indent=2)
    if args.output is not None:
        args.output.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(
            f"{args.data}: {results['examples']} clips, accuracy {results['accuracy']:.4f}, "
            f"mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``finetune`` and ``evaluate`` on the ``ast-jax`` subparsers."""
    finetune = commands.add_parser(
        "finetune",
        help="fine-tune a checkpoint (or train a config.json from scratch) on labelled audio",
        description="Options left out take the --recipe's value, else TrainConfig's default "
        "(the original AST optimiser: Adam (0.95, 0.999), L2 5e-7, warm-up, per-epoch decay).",
    )
    finetune.add_argument("data", type=Path, help="root/<label>/*.wav folder or CSV manifest")
    finetune.add_argument(
        "--model", required=True, help="checkpoint directory or hub id, or a config.json"
    )
    finetune.add_argument("--out", type=Path, required=True, help="output directory")
    finetune.add_argument("--val", type=Path, help="validation dataset (folder or CSV)")
    finetune.add_argument(
        "--val-fraction", type=float, default=0.0, help="without --val: hold out this share"
    )
    finetune.add_argument("--recipe", choices=sorted(RECIPES), help="the original's settings")
    finetune.add_argument("--epochs", type=int)
    finetune.add_argument("--batch-size", type=int)
    finetune.add_argument("--accumulate", type=int, help="micro-batches per update")
    finetune.add_argument("--lr", type=float, help="base learning rate")
    finetune.add_argument("--warmup-steps", type=int, help="0 disables the warm-up")
    finetune.add_argument("--warmup-every", type=int, help="warm-up stair length (updates)")
    finetune.add_argument("--lr-decay-start", type=int, help="first decayed epoch (0-based)")
    finetune.add_argument("--lr-decay-every", type=int)
    finetune.add_argument("--lr-decay", type=float, help="factor per decay (1 disables)")
    finetune.add_argument("--freqm", type=int, help="SpecAugment frequency mask parameter")
    finetune.add_argument("--timem", type=int, help="SpecAugment time mask parameter")
    finetune.add_argument("--mixup", type=float, help="mixup probability per example")
    finetune.add_argument("--noise", type=float, help="noise scale (the original: 0.1)")
    finetune.add_argument("--time-shift", type=int, help="max circular time shift (frames)")
    finetune.add_argument(
        "--freq-warp", type=float, help="max frequency warp factor deviation (e.g. 0.1; 0 is off)"
    )
    finetune.add_argument(
        "--weight-average", type=int, nargs=2, metavar=("FIRST", "LAST"),
        help="also save the average of these epochs' weights (1-based) to OUT/model_wa",
    )  # fmt: skip
    finetune.add_argument("--seed", type=int)
    finetune.add_argument(
        "--stats", default="auto",
        help="normalisation: auto, model, dataset or a preset (audioset, esc50, speech_commands)",
    )  # fmt: skip
    finetune.add_argument("--cache", type=Path, help="feature cache (default OUT/cache)")
    finetune.add_argument("--resume", action="store_true", help="continue from OUT/state")
    finetune.add_argument(
        "--data-parallel", action="store_true", help="split batches over all local devices"
    )
    finetune.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    finetune.set_defaults(run=_finetune)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, mAP, mean AUC and d' of a model on labelled audio"
    )
    evaluate.add_argument("model", help="checkpoint directory or hub id")
    evaluate.add_argument("data", type=Path, help="root/<label>/*.wav folder or CSV manifest")
    evaluate.add_argument("--cache", type=Path, help="feature cache directory")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--output", type=Path, help="also write the JSON to this file")
    evaluate.set_defaults(run=_evaluate)
