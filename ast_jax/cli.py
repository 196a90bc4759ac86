"""The ``ast-jax`` command line.

Exit codes: 0 success, 1 a file failed (the others are still processed), 2 usage errors.
Errors go to stderr; results and progress to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ast_jax.audio import load_audio
from ast_jax.features import PRESETS, FeatureExtractor

__all__ = ["main"]


def _features(args: argparse.Namespace) -> int:
    extractor = FeatureExtractor.from_preset(args.preset)
    args.output.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.files:
        try:
            waveform = load_audio(path, extractor.sampling_rate)
            output = extractor(
                waveform, sampling_rate=extractor.sampling_rate, return_num_frames=True
            )
        except (OSError, ValueError, TypeError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        values, frames = output["input_values"][0], int(output["num_frames"][0])
        target = args.output / f"{path.stem}.npy"
        np.save(target, values)
        print(f"{path}: {frames} frames -> {target} {values.shape}")
        if args.png:
            png = target.with_suffix(".png")
            _save_spectrogram(
                values[:frames], png, title=f"{path.name} ({args.preset} normalisation)"
            )
            print(f"{path}: spectrogram -> {png}")
    return 1 if failures else 0


def _save_spectrogram(values: np.ndarray, path: Path, title: str) -> None:
    """Draw ``(T, F)`` features with time across and mel bins up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.5), layout="constrained")
    image = axes.imshow(
        values.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest"
    )
    axes.set(title=title, xlabel="frame (10 ms)", ylabel="mel bin")
    figure.colorbar(image, ax=axes, label="normalised log-mel")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ast-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    features = commands.add_parser(
        "features", help="AST input features (Kaldi fbank, padded, normalised) of audio files"
    )
    features.add_argument("files", nargs="+", type=Path, help="audio files")
    features.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    features.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="audioset",
        help="normalisation statistics and length",
    )
    features.add_argument("--png", action="store_true", help="also draw each spectrogram to a PNG")
    features.set_defaults(run=_features)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
