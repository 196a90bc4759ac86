"""The ``export`` command: a classifier checkpoint to a serving artifact (StableHLO or ONNX) and its
``metadata.json`` (`ast_jax.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ast_jax.cli.common import EXIT_OK, MODEL_HELP, CommandError
from ast_jax.config import ATTENTIONS, DTYPES

__all__ = ["add_commands"]

# As in `ast_jax.export` (kept here so that building the parser imports no JAX).
_FORMATS = ("stablehlo", "onnx")
_INPUTS = ("waveform", "features")
_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_DEFAULT_PLATFORMS = "cpu,cuda,tpu"


def _platforms(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated platform names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in _PLATFORMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated names from {', '.join(_PLATFORMS)}, got {text!r}"
        )
    return names


def _export(args: argparse.Namespace) -> int:
    from ast_jax.export.artifact import export_model

    output = args.output or args.output_positional
    if output is None or (args.output and args.output_positional):
        raise CommandError("give the output directory once: export MODEL OUTPUT")
    if args.format == "onnx" and args.platforms is not None:
        raise CommandError("--platforms applies to --format stablehlo; ONNX runs on onnxruntime")
    try:
        info = export_model(
            args.model,
            output,
            format=args.format,
            input=args.input,
            platforms=args.platforms or _platforms(_DEFAULT_PLATFORMS),
            dtype=args.dtype,
            attention=args.attention,
        )
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise CommandError(f"cannot export {args.model}: {error}") from error
    inputs = ", ".join(
        f"{item['name']} ({', '.join(map(str, item['shape']))}) {item['dtype']}"
        for item in info["inputs"]
    )
    print(
        f"{args.model} -> {Path(output) / info['file']} ({info['bytes'] / 1e6:.1f} MB, "
        f"{', '.join(info['platforms'])}; {inputs} -> logits (batch, {len(info['labels'])}))"
    )
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``export``."""
    export = commands.add_parser(
        "export",
        help="classifier -> serving artifact: StableHLO (cpu/cuda/tpu) or ONNX, waveform -> logits",
        description="Write OUTPUT/model.stablehlo (jax.export, parameters baked in, batch "
        "dimension symbolic) or OUTPUT/model.onnx, and OUTPUT/metadata.json. Neither needs "
        "ast-jax to run; examples/serve_exported.py serves one.",
    )
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument(
        "output_positional", nargs="?", type=Path, metavar="OUTPUT", help="same as -o"
    )
    export.add_argument("-o", "--output", type=Path, help="directory to write")
    export.add_argument(
        "--format", choices=_FORMATS, default="stablehlo", help="artifact format (stablehlo)"
    )
    export.add_argument(
        "--input",
        choices=_INPUTS,
        default="waveform",
        help="waveform: (batch, num_samples) float32 waveforms and (batch,) int32 lengths, "
        "features computed inside (default); features: (batch, max_length, num_mel_bins)",
    )
    export.add_argument(
        "--platforms",
        type=_platforms,
        help=f"StableHLO platforms, comma-separated (default: {_DEFAULT_PLATFORMS})",
    )
    export.add_argument(
        "--dtype", choices=DTYPES, help="compute dtype (default: float32, the parity mode)"
    )
    export.add_argument(
        "--attention",
        choices=ATTENTIONS,
        help="attention kernel (default: auto, chosen per platform inside the program)",
    )
    export.set_defaults(run=_export)
