"""The training commands: ``finetune`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ast_jax.cli.common import (
    EXIT_OK,
    LOAD_ERRORS,
    MODEL_HELP,
    CommandError,
    add_distributed,
    add_format,
    add_output,
    add_quiet,
    positive_int,
    start_distributed,
)
from ast_jax.training.config import RECIPES

if TYPE_CHECKING:
    from ast_jax.training.config import TrainConfig

__all__ = ["add_commands"]

_TRAIN_ERRORS = (*LOAD_ERRORS, FloatingPointError)


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


def _mesh(args: argparse.Namespace) -> Any:
    """The data-parallel mesh: every device of a multi-process run, the local devices with
    --data-parallel, else None (one device)."""
    multi_process = start_distributed(args)
    if not (multi_process or getattr(args, "data_parallel", False)):
        return None
    from ast_jax.runtime.distributed import global_mesh

    return global_mesh()


def _finetune(args: argparse.Namespace) -> int:
    from ast_jax.training.finetune import finetune

    model = _model(args)
    if args.output is None:
        raise CommandError("finetune needs -o OUTPUT, the directory to write")
    try:
        train_config = _train_config(args)
        result = finetune(
            args.data, model, args.output, train_config,
            validation=args.val, validation_fraction=args.val_fraction, stats=args.stats,
            in_memory=args.in_memory, cache_dir=args.cache, balanced=args.balanced,
            workers=args.workers, resume=args.resume, mesh=_mesh(args), progress=not args.quiet,
            log_every=args.log_every, save_every=args.save_every, keep=args.keep,
        )  # fmt: skip
    except _TRAIN_ERRORS as error:
        raise CommandError(str(error)) from error
    from ast_jax.training.history import format_record

    print(f"{args.output / 'model'}: {format_record(result.history[-1])}")
    if result.averaged_params is not None:
        print(f"{args.output / 'model_wa'}: weight average of epochs {train_config.weight_average}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from ast_jax.checkpoints.sources import resolve_model
    from ast_jax.training.finetune import evaluate_model

    try:
        results = evaluate_model(
            resolve_model(args.model), args.data, batch_size=args.batch_size,
            workers=args.workers, mesh=_mesh(args),
        )  # fmt: skip
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
    finetune.add_argument(
        "--balanced", action="store_true",
        help="draw clips with the AudioSet recipe's label weights (rare labels more often)",
    )  # fmt: skip
    finetune.add_argument(
        "--workers", type=int, default=0, help="processes decoding audio (default 0: none)"
    )
    finetune.add_argument(
        "--in-memory", action="store_true",
        help="compute every clip's features once and train from RAM (small data; no mixup)",
    )  # fmt: skip
    finetune.add_argument("--cache", type=Path, help="--in-memory feature cache (OUT/cache)")
    finetune.add_argument("--resume", action="store_true", help="continue from OUT/state")
    finetune.add_argument(
        "--log-every", type=positive_int, default=50, help="steps between metric fetches"
    )
    finetune.add_argument(
        "--save-every", type=positive_int, help="also save the state every this many steps"
    )
    finetune.add_argument("--keep", type=positive_int, default=2, help="latest states kept")
    finetune.add_argument(
        "--data-parallel", action="store_true", help="split batches over all local devices"
    )
    add_distributed(finetune)
    add_quiet(finetune)
    finetune.set_defaults(run=_finetune)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, mAP, mean AUC and d' of a model on labelled audio"
    )
    evaluate.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    evaluate.add_argument("data", type=Path, help="root/<label>/*.wav folder or CSV manifest")
    evaluate.add_argument("--batch-size", type=positive_int, default=64)
    evaluate.add_argument(
        "--workers", type=int, default=0, help="processes decoding audio (default 0: none)"
    )
    add_distributed(evaluate)
    add_format(evaluate, ("table", "json"))
    add_output(evaluate, "also write the JSON to this file", required=False)
    evaluate.set_defaults(run=_evaluate)
