"""The ``ast-jax`` command line: the parser and the entry point.

Subcommands: ``classify``, ``embed``, ``merge``, ``explain``, ``info``
(`ast_jax.cli.inference`), ``features`` (`ast_jax.cli.features`), ``convert``
(`ast_jax.cli.convert`), ``export`` (`ast_jax.cli.export`), ``finetune`` and ``evaluate``
(`ast_jax.cli.train`). Results go to stdout (``--format json|csv`` for machines),
errors to stderr, progress bars (tqdm) to stderr. Flags and exit codes are shared by every command
(`ast_jax.cli.common`): 0 success, 1 an input failed, 2 the command cannot run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ast_jax.cli import convert, export, features, inference, train
from ast_jax.cli.common import EXIT_CANNOT_RUN, CommandError, report, split_model

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``ast-jax`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ast-jax",
        description="The Audio Spectrogram Transformer in JAX: classify, embed and explain audio, "
        "convert checkpoints, fine-tune.",
        epilog="Exit codes: 0 success, 1 an input failed (the others are still processed), "
        "2 the command cannot run.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inference.add_commands(commands)
    features.add_commands(commands)
    convert.add_commands(commands)
    export.add_commands(commands)
    train.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "arguments"):
            split_model(args)
        return args.run(args)
    except CommandError as error:
        report(str(error))
        return EXIT_CANNOT_RUN
