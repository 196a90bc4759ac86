"""The training commands: ``finetune`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ast_jax.cli.common import (
    EXIT_OK,
    MODEL_HELP,
    CommandError,
    add_format,
    add_output,
    add_quiet,
)
from ast_jax.training.config import RECIPES

if TYPE_CHECKING:
    from ast_jax.training.config import TrainConfig

__all__ = ["add_commands"]

_TRAIN_ERRORS = (OSError, ValueError, ImportError)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's settings (if any), overridden by the options given."""
    from ast_jax.training.config import TrainConfig

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


def _model(args: argparse.Namespace) -> str:
    """MODEL (a bundled name resolved), given first or (older spelling) as ``--model``."""
    from ast_jax.checkpoints.sources import resolve_model

    if (args.model is None) == (args.model_option is None):
        raise CommandError("give MODEL once: finetune MODEL DATA -o OUTPUT")
    return resolve_model(args.model or args.model_option)


def _finetune(args: argparse.Namespace) -> int:
    from ast_jax.runtime.sharding import data_mesh
    from ast_jax.training.finetune import finetune

    model = _model(args)
    if args.output is None:
        raise CommandError("finetune needs -o OUTPUT, the directory to write")
    try:
        train_config = _train_config(args)
        result = finetune(
            args.data, model, args.output, train_config,
            validation=args.val, validation_fraction=args.val_fraction, stats=args.stats,
            cache_dir=args.cache, resume=args.resume,
            mesh=data_mesh() if args.data_parallel else None, progress=not args.quiet,
        )  # fmt: skip
    except _TRAIN_ERRORS as error:
        raise CommandError(str(error)) from error
    last = result.history[-1]
    shown = {k: round(v, 4) for k, v in last.items() if isinstance(v, float)}
    print(f"{args.output / 'model'}: {shown}")
    if result.averaged_params is not None:
        print(f"{args.output / 'model_wa'}: weight average of epochs {train_config.weight_average}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from ast_jax.checkpoints.sources import resolve_model
    from ast_jax.training.finetune import evaluate_model

    try:
        results = evaluate_model(
            resolve_model(args.model), args.data, cache_dir=args.cache, batch_size=args.batch_size
        )
    except _TRAIN_ERRORS as error:
        raise CommandError(str(error)) from error
    text = json.dumps(results, indent=2)
    if args.output is not None:
        from ast_jax.files import atomic_write

        atomic_write(args.output, lambda temp: Path(temp).write_text(text + "\n"))
    if args.format == "json":
        print(text)
    else:
        print(
            f"{args.data}: {results['examples']} clips, accuracy {results['accuracy']:.4f}, "
            f"mAP {results['mAP']:.4f}, mAUC {results['mAUC']:.4f}, d' {results['d_prime']:.3f}"
        )
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``finetune`` and ``evaluate`` on the ``ast-jax`` subparsers."""
    finetune = commands.add_parser(
        "finetune",
        help="fine-tune a checkpoint (or train a config.json from scratch) on labelled audio",
        description="Options left out take the --recipe's value, else TrainConfig's default "
        "(the original AST optimiser: Adam (0.95, 0.999), L2 5e-7, warm-up, per-epoch decay).",
    )
    finetune.add_argument(
        "model", nargs="?", metavar="MODEL", help=f"{MODEL_HELP}, or a config.json (from scratch)"
    )
    finetune.add_argument("data", type=Path, help="root/<label>/*.wav folder or CSV manifest")
    add_output(finetune, "output directory (model, state, history)", required=False)
    # Older spellings: --model MODEL, --out DIR.
    finetune.add_argument("--model", dest="model_option", help=argparse.SUPPRESS)
    finetune.add_argument("--out", dest="output", type=Path, help=argparse.SUPPRESS)
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
    add_quiet(finetune)
    finetune.set_defaults(run=_finetune)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, mAP, mean AUC and d' of a model on labelled audio"
    )
    evaluate.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    evaluate.add_argument("data", type=Path, help="root/<label>/*.wav folder or CSV manifest")
    evaluate.add_argument("--cache", type=Path, help="feature cache directory")
    evaluate.add_argument("--batch-size", type=int, default=64)
    add_format(evaluate, ("table", "json"))
    add_output(evaluate, "also write the JSON to this file", required=False)
    evaluate.set_defaults(run=_evaluate)
