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
import contextlib
import os
import traceback
import warnings
from collections.abc import Iterator, Sequence

from ast_jax.cli import convert, export, features, inference, train
from ast_jax.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    LOAD_ERRORS,
    CommandError,
    report,
    split_model,
)
from ast_jax.runtime.compilation_cache import enable_compilation_cache

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``ast-jax`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ast-jax",
        description="The Audio Spectrogram Transformer in JAX: classify, embed and explain audio, "
        "convert checkpoints, fine-tune.",
        epilog="Exit codes: 0 success, 1 an input failed (the others are still processed), "
        "2 the command cannot run, 130 interrupted.",
    )
    parser.add_argument(
        "--no-compilation-cache",
        action="store_true",
        help="compile every program anew instead of loading it from the persistent cache in "
        "~/.cache/ast-jax (also AST_JAX_COMPILATION_CACHE=0)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get("AST_JAX_DEBUG", "") not in ("", "0"),
        help="print the traceback of an error (also AST_JAX_DEBUG=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inference.add_commands(commands)
    features.add_commands(commands)
    convert.add_commands(commands)
    export.add_commands(commands)
    train.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code.

    Every error ends as one line on stderr and exit code 2 (130 for Ctrl-C): a bad
    file or option says what is wrong; anything else is a bug, reported as such. ``--debug``
    adds the traceback.
    """
    args = build_parser().parse_args(argv)
    if not args.no_compilation_cache:
        enable_compilation_cache()
    try:
        with _one_line_warnings():
            if hasattr(args, "arguments"):
                split_model(args)
            return args.run(args)
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        report(_message(error))
        return EXIT_CANNOT_RUN


def _format_warning(message: Warning | str, category: type[Warning], *_: object) -> str:
    return f"warning: {message}\n"


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings printed like errors, ``warning: <message>``, while a command runs (restored
    after it, for callers of `main` in a longer-lived process)."""
    previous = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _message(error: Exception) -> str:
    """The one-line message of an error that stopped a command."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, (CommandError, FloatingPointError, MemoryError, *LOAD_ERRORS)):
        return text
    return (
        f"internal error ({type(error).__name__}: {text}); rerun with --debug for the traceback "
        "and report it"
    )
