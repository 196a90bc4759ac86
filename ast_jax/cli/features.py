"""The ``features`` command: AST input features of audio files, as ``.npy`` (and PNG) files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ast_jax.cli.common import (
    EXIT_INPUT_FAILED,
    EXIT_OK,
    CommandError,
    add_output,
    expand_inputs,
    report_failure,
)
from ast_jax.cli.output import output_names
from ast_jax.frontend.extractor import PRESETS

__all__ = ["add_commands"]


def _features(args: argparse.Namespace) -> int:
    import numpy as np

    from ast_jax.files import save_npy
    from ast_jax.frontend.audio import load_audio
    from ast_jax.frontend.extractor import FeatureExtractor
    from ast_jax.plots import save_spectrogram

    extractor = FeatureExtractor.from_preset(args.preset)
    if args.output.exists() and not args.output.is_dir():
        raise CommandError(f"-o {args.output} is a file; expected a directory")
    files, failures = expand_inputs(args.files)
    names = output_names(files, ".npy")
    for path in files:
        try:
            waveform = load_audio(path, extractor.sampling_rate)
            output = extractor(
                waveform, sampling_rate=extractor.sampling_rate, return_num_frames=True
            )
        except (OSError, ValueError, TypeError) as error:
            report_failure(path, error)
            failures += 1
            continue
        values, frames = output["input_values"][0], int(output["num_frames"][0])
        target = args.output / names[str(path)]
        save_npy(target, np.asarray(values))
        print(f"{path}: {frames} frames -> {target} {values.shape}")
        if args.png:
            png = target.with_suffix(".png")
            title = f"{path.name} ({args.preset} normalisation)"
            save_spectrogram(values[:frames], extractor.fbank_options, png, title=title)
            print(f"{path}: spectrogram -> {png}")
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``features``."""
    features = commands.add_parser(
        "features", help="AST input features (Kaldi fbank, padded, normalised) of audio files"
    )
    features.add_argument("files", nargs="+", type=Path, help="audio files or directories")
    add_output(features, "output directory")
    features.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="audioset",
        help="normalisation statistics and length",
    )
    features.add_argument("--png", action="store_true", help="also draw each spectrogram to a PNG")
    features.set_defaults(run=_features)
