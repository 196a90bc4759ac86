"""What every ``ast-jax`` command shares: the flag vocabulary, exit codes and error handling.

Vocabulary (the same flag for the same thing in every command):

- ``MODEL``: the first positional argument, a checkpoint directory (ast-jax or Hugging Face), a
  hub id or a bundled model's name; optional where the bundled model is a sensible default.
- ``-o/--output``: the file or directory a command writes.
- ``--batch-size``, ``--top-k``, ``--format``, ``-q/--quiet``: as their names say, wherever they
  apply.

Exit codes: 0 success; 1 an input failed (the others are still processed); 2 the command cannot
run (usage error, invalid option, a model, checkpoint or dataset that cannot be loaded, an output
that cannot be written); 130 interrupted (Ctrl-C).

Errors are one line on stderr, ``error: <what> <why>``, naming the file concerned. No traceback is
printed for a user mistake; ``--debug`` (or ``AST_JAX_DEBUG=1``) shows it for any error.

The parser is built without importing JAX: command handlers import what they run.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

from ast_jax.checkpoints.bundled import BUNDLED_MODELS, DEFAULT_BUNDLED_MODEL

__all__ = [
    "EXIT_CANNOT_RUN",
    "EXIT_INPUT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "LOAD_ERRORS",
    "MANIFEST_SUFFIX",
    "MODEL_HELP",
    "CommandError",
    "add_distributed",
    "add_format",
    "add_model_and_inputs",
    "add_output",
    "add_quiet",
    "expand_inputs",
    "positive_int",
    "report",
    "report_failure",
    "split_model",
    "start_distributed",
]

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by SIGINT

# Inputs with this suffix are manifests: a CSV whose first column lists audio files.
MANIFEST_SUFFIX = ".csv"

MODEL_HELP = (
    "a checkpoint directory (ast-jax or Hugging Face), a hub id or a bundled model "
    f"({', '.join(BUNDLED_MODELS)})"
)


# What loading a model, checkpoint, config or dataset raises for a bad file (not a bug): a
# missing or unreadable file, invalid contents, a missing optional package, a refused pickle.
LOAD_ERRORS = (OSError, ValueError, ImportError, pickle.UnpicklingError)


class CommandError(Exception):
    """The command cannot run at all (exit code 2)."""


# Detail lines of a multi-line message kept in its one-line report.
_DETAILS = 4


def _one_line(message: str) -> str:
    """A multi-line message (a summary, then detail lines) as one line: the details joined with
    "; ", the first few only."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    head, details = lines[0], lines[1 : 1 + _DETAILS]
    more = len(lines) - 1 - len(details)
    return f"{head} {'; '.join(details)}" + (f"; and {more} more" if more else "")


def report(message: str) -> None:
    """Prints ``error: message`` to stderr, on one line."""
    print(f"error: {_one_line(message)}", file=sys.stderr)


def report_failure(source: object, error: BaseException) -> None:
    """Reports why one input failed, naming it once."""
    text = str(error)
    report(text if str(source) in text else f"{source}: {text}")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_output(parser: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """``-o/--output PATH``."""
    parser.add_argument("-o", "--output", type=Path, required=required, help=help)


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress bar."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_model_and_inputs(parser: argparse.ArgumentParser, inputs: str, count: str) -> None:
    """``[MODEL] INPUTS``: the leading MODEL is optional (see `split_model`)."""
    parser.add_argument(
        "arguments",
        nargs=count,
        metavar=inputs,
        help=f"{inputs}, after an optional leading MODEL: {MODEL_HELP}; default: the bundled "
        f"{DEFAULT_BUNDLED_MODEL}",
    )
    parser.set_defaults(inputs_name=inputs)


# Files that make a directory a checkpoint (possibly a half-written one) rather than audio.
_CHECKPOINT_MARKERS = (
    "config.json", "preprocessor_config.json", "*.safetensors", "pytorch_model.bin",
)  # fmt: skip


def _names_model(argument: str) -> bool:
    """Whether a leading argument names a model rather than audio: a bundled model; a directory
    that holds checkpoint files or no audio at all (so that a half-written or mistyped
    checkpoint fails to load, naming it, instead of being read as an empty audio folder); or
    anything else that is not a local path or an audio file name (a hub id)."""
    from ast_jax.frontend.audio import AUDIO_EXTENSIONS, has_audio  # soundfile: not for --help

    path = Path(argument)
    if argument in BUNDLED_MODELS:
        return True
    if path.is_dir():
        markers = any(next(path.glob(pattern), None) for pattern in _CHECKPOINT_MARKERS)
        return markers or not has_audio(path)
    if path.exists():
        return False
    return path.suffix.lower() not in AUDIO_EXTENSIONS | {MANIFEST_SUFFIX}


def split_model(args: argparse.Namespace) -> None:
    """Sets ``args.model`` (None: the bundled model) and ``args.inputs`` from ``args.arguments``."""
    arguments = list(args.arguments)
    args.model = arguments.pop(0) if arguments and _names_model(arguments[0]) else None
    if not arguments:
        raise CommandError(f"no {args.inputs_name} given after the model")
    args.inputs = [Path(argument) for argument in arguments]


def expand_inputs(paths: Sequence[Path], errors: list[str] | None = None) -> tuple[list[Path], int]:
    """Files named, found in directories (sorted) or listed by ``.csv`` manifests (in row order,
    `ast_jax.inference.parts.read_manifest`), in argument order, and the number of arguments that
    gave none (each reported on stderr, and its message appended to ``errors`` if given)."""
    from ast_jax.frontend.audio import find_audio

    files, failures = [], 0
    for path in paths:
        try:
            if path.suffix.lower() == MANIFEST_SUFFIX:
                from ast_jax.inference.parts import read_manifest

                files.extend(read_manifest(path))
            else:
                files.extend(find_audio(path))
        except FileNotFoundError as error:
            message = str(error) if path.exists() else f"{path}: not found"
        except (OSError, ValueError) as error:  # an unreadable or empty manifest
            message = str(error)
        else:
            continue
        report(message)
        failures += 1
        if errors is not None:
            errors.append(message)
    return files, failures


def add_format(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    """``--format`` (default: table), and ``--json`` as its older spelling."""
    parser.add_argument("--format", choices=choices, default="table", help="output format")
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help=argparse.SUPPRESS
    )


def add_distributed(parser: argparse.ArgumentParser) -> None:
    """The flags that join a multi-process run (`ast_jax.runtime.distributed`)."""
    group = parser.add_argument_group(
        "multi-process runs",
        "Run the same command in every process. --distributed detects the cluster (TPU pods, "
        "SLURM, Open MPI); elsewhere give --coordinator, --num-processes and --process-id.",
    )
    group.add_argument("--distributed", action="store_true", help="detect the cluster")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    group.add_argument("--num-processes", type=positive_int, help="processes in the run")
    group.add_argument("--process-id", type=int, help="this process, 0 .. N-1")


def start_distributed(args: argparse.Namespace) -> bool:
    """Joins the multi-process run the flags ask for; returns whether there is one."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(value is None for value in explicit):
        return False
    from ast_jax.runtime.distributed import initialize

    try:
        if args.distributed:
            initialize()
        else:
            initialize(*explicit)
    except (ValueError, RuntimeError) as error:
        raise CommandError(f"cannot join the multi-process run: {error}") from error
    return True
