"""The ``convert`` command: a Hugging Face checkpoint (directory or hub id) or an original `.pth`
file to an ast-jax checkpoint directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_jax.cli.common import EXIT_OK, LOAD_ERRORS, MODEL_HELP, CommandError, positive_int

__all__ = ["add_commands"]


def _convert(args: argparse.Namespace) -> int:
    from ast_jax.checkpoints.pretrained import load_feature_extractor, save_pretrained
    from ast_jax.checkpoints.sources import load_source

    output = args.output or args.output_positional
    if output is None or (args.output and args.output_positional):
        raise CommandError("give the output directory once: convert SOURCE -o OUTPUT")
    try:
        config, params = load_source(
            args.model,
            strides=args.strides,
            max_length=args.max_length,
            num_attention_heads=args.heads,
            timm_exact=not args.hf_layer_norm_eps,
        )
    except LOAD_ERRORS as error:
        raise CommandError(f"cannot read {args.model}: {error}") from error
    try:
        extractor = load_feature_extractor(args.model)
    except (FileNotFoundError, NotADirectoryError):  # the latter: a .pth file
        extractor = None
        print(f"warning: {args.model} has no preprocessor_config.json", file=sys.stderr)
    try:
        save_pretrained(output, config, params, feature_extractor=extractor)
    except OSError as error:
        raise CommandError(f"cannot write {output}: {error}") from error
    print(f"{args.model} -> {output}")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``convert``."""
    convert = commands.add_parser(
        "convert",
        help="Hugging Face checkpoint (directory or hub id) or original .pth -> ast-jax directory",
    )
    convert.add_argument("model", metavar="MODEL", help=f"{MODEL_HELP}, or an original .pth file")
    convert.add_argument(
        "output_positional", nargs="?", type=Path, metavar="OUTPUT", help="same as -o"
    )
    convert.add_argument("-o", "--output", type=Path, help="ast-jax checkpoint directory to write")
    original = convert.add_argument_group("original .pth checkpoints")
    original.add_argument(
        "--strides",
        type=positive_int,
        nargs=2,
        metavar=("FREQUENCY", "TIME"),
        help="patch strides (default: from a name like audioset_10_10_0.4593.pth)",
    )
    original.add_argument(
        "--max-length", type=positive_int, help="input frames (default: 1024, 512 or 128)"
    )
    original.add_argument("--heads", type=positive_int, help="attention heads (default: D / 64)")
    original.add_argument(
        "--hf-layer-norm-eps",
        action="store_true",
        help="HF's LayerNorm eps 1e-12 instead of the original timm 1e-6 (head 1e-5)",
    )
    convert.set_defaults(run=_convert)
