"""The ``ast-jax`` command line.

Subcommands: ``classify``, ``embed``, ``features``, ``convert``, ``info``, ``explain``,
``finetune``, ``evaluate``. Results go to stdout (``classify --format json|csv`` for machines),
errors to stderr, progress bars (tqdm) to stderr.

Exit codes: 0 success, 1 an input failed (the others are still processed), 2 the command cannot run:
usage errors, invalid options, a model or checkpoint that cannot be loaded.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ast_jax.audio import AUDIO_EXTENSIONS, find_audio, load_audio
from ast_jax.bundled import BUNDLED_MODELS, DEFAULT_BUNDLED_MODEL
from ast_jax.cli_train import add_commands as add_training_commands
from ast_jax.config import ASTConfig
from ast_jax.features import PRESETS, FeatureExtractor
from ast_jax.inference import (
    ACTIVATIONS,
    AGGREGATES,
    EMBEDDING_FORMATS,
    AudioClassifier,
    Classification,
    Embedding,
    Failure,
    activate,
    default_activation,
    load_model,
    resolve_model,
    save_embeddings,
)

__all__ = ["main"]

# Fewer windows than this finish in a blink; a progress bar would only add noise.
_PROGRESS_MIN_WINDOWS = 32
# Labels drawn in a timeline.
_TIMELINE_LABELS = 10


class _CommandError(Exception):
    """The command cannot run at all (exit code 2)."""


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


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported only when drawing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_spectrogram(values: np.ndarray, path: Path, title: str) -> None:
    """Draw ``(T, F)`` features with time across and mel bins up."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 3.5), layout="constrained")
    image = axes.imshow(
        values.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest"
    )
    axes.set(title=title, xlabel="frame (10 ms)", ylabel="mel bin")
    figure.colorbar(image, ax=axes, label="normalised log-mel")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _expand(paths: Sequence[Path]) -> tuple[list[Path], int]:
    """Files named or found in directories, and the number of arguments that gave none."""
    files, failures = [], 0
    for path in paths:
        try:
            files.extend(find_audio(path))
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
    return files, failures


def _load_classifier(args: argparse.Namespace, **options: str | None) -> AudioClassifier:
    """The classifier of ``args.model`` with the window options; failures exit with code 2."""
    try:
        checkpoint = load_model(resolve_model(args.model))
    except (OSError, ValueError, ImportError) as error:
        raise _CommandError(f"cannot load model {args.model}: {error}") from error
    try:
        return AudioClassifier(
            *checkpoint,
            batch_size=args.batch_size,
            window=args.window,
            hop=args.hop,
            length_bucket=args.length_bucket,
            **options,
        )
    except ValueError as error:
        raise _CommandError(str(error)) from error


def _with_progress(
    classifier: AudioClassifier,
    files: Sequence[Path],
    quiet: bool,
    run: Callable[..., Iterator[Classification | Embedding | Failure]],
) -> Iterator[Classification | Embedding | Failure]:
    """Runs ``run(files, progress=...)`` under a tqdm bar (on stderr) counting windows."""
    from tqdm import tqdm

    total = sum(classifier.count_windows(path) for path in files)
    disable = quiet or total < _PROGRESS_MIN_WINDOWS
    with tqdm(total=total, unit="window", disable=disable, file=sys.stderr) as bar:
        yield from run(files, progress=bar.update)


def _report_failure(failure: Failure) -> None:
    print(f"error: {failure.source}: {failure.error}", file=sys.stderr)


def _classify(args: argparse.Namespace) -> int:
    files, failures = _expand(args.inputs)
    classifier = _load_classifier(args, activation=args.activation, aggregate=args.aggregate)
    results = []
    timeline_names = timeline_file_names(files)
    for result in _with_progress(classifier, files, args.quiet, classifier.classify_iter):
        if isinstance(result, Failure):
            _report_failure(result)
            failures += 1
            continue
        results.append(_summary(result, args.top_k, args.per_window))
        if args.timeline is not None:
            _save_timeline(result, args.timeline / timeline_names[str(result.source)])
    _print_results(results, args.format)
    return 1 if failures else 0


def timeline_file_names(files: Sequence[Path]) -> dict[str, str]:
    """PNG name per file (keyed by ``str(path)``): ``<stem>.png``, or, for files whose stems
    collide, their path below the files' common folder joined with ``__`` (``a__x.png``)."""
    stems = Counter(Path(path).stem for path in files)
    resolved = [Path(path).resolve() for path in files]
    common = Path(os.path.commonpath([path.parent for path in resolved])) if files else Path()
    names = {}
    for path, absolute in zip(files, resolved, strict=True):
        if stems[Path(path).stem] == 1:
            names[str(path)] = f"{Path(path).stem}.png"
        else:
            names[str(path)] = (
                "__".join(absolute.relative_to(common).with_suffix("").parts) + ".png"
            )
    return names


def _summary(result: Classification, k: int, per_window: bool) -> dict:
    """The JSON-ready view of one result: clip top-k, and each window's if asked."""

    def ranked(pairs: list[tuple[str, float]]) -> list[dict]:
        return [{"label": label, "score": round(score, 6)} for label, score in pairs]

    summary = {
        "file": result.source,
        "duration": round(result.duration, 3),
        "windows": len(result.window_times),
        "top": ranked(result.top_k(k)),
    }
    if per_window:
        summary["per_window"] = [
            {"start": round(start, 3), "end": round(end, 3), "top": ranked(top)}
            for (start, end), top in zip(result.window_times, result.window_top_k(k), strict=True)
        ]
    return summary


def _print_results(results: list[dict], output_format: str) -> None:
    if output_format == "json":
        json.dump(results, sys.stdout, indent=2)
        print()
    elif output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["file", "scope", "start", "end", "rank", "label", "score"])
        for result in results:
            scopes = [("clip", 0.0, result["duration"], result["top"])]
            scopes += [
                ("window", w["start"], w["end"], w["top"]) for w in result.get("per_window", [])
            ]
            for scope, start, end, top in scopes:
                for rank, entry in enumerate(top, 1):
                    writer.writerow(
                        [result["file"], scope, start, end, rank, entry["label"], entry["score"]]
                    )
    else:
        for result in results:
            print(f"{result['file']}  ({result['duration']:.2f} s, {result['windows']} windows)")
            print(f"  clip             {_ranked_text(result['top'])}")
            for window in result.get("per_window", []):
                span = f"{window['start']:7.2f}-{window['end']:7.2f} s"
                print(f"  {span}  {_ranked_text(window['top'])}")


def _ranked_text(top: list[dict]) -> str:
    return ", ".join(f"{entry['label']} {entry['score']:.3f}" for entry in top)


def _save_timeline(result: Classification, path: Path) -> None:
    """Draw the scores over time of the labels that score highest in any window."""
    plt = _pyplot()
    peak = result.window_scores.max(axis=0)  # (C,)
    rows = np.argsort(-peak, kind="stable")[:_TIMELINE_LABELS]
    starts = result.window_times[:, 0]
    # Column k spans from window k's start to the next start (the last to its end).
    edges = np.append(starts, result.window_times[-1, 1])
    figure, axes = plt.subplots(figsize=(12, 1 + 0.35 * len(rows)), layout="constrained")
    mesh = axes.pcolormesh(
        edges, np.arange(len(rows) + 1), result.window_scores[:, rows].T, cmap="viridis"
    )
    axes.set_yticks(np.arange(len(rows)) + 0.5, [result.labels[i] for i in rows])
    axes.invert_yaxis()
    axes.set(title=Path(result.source).name, xlabel="time (s)")
    figure.colorbar(mesh, ax=axes, label="score")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _embed(args: argparse.Namespace) -> int:
    if args.output.suffix not in EMBEDDING_FORMATS:
        raise _CommandError(f"-o must end in one of {', '.join(EMBEDDING_FORMATS)}")
    if args.output.suffix == ".npy" and (args.tokens or args.hidden_states):
        raise _CommandError("--tokens and --hidden-states need -o .npz or .safetensors")
    files, failures = _expand(args.inputs)
    classifier = _load_classifier(args)

    def run(paths, progress):
        return classifier.embed_iter(
            paths, tokens=args.tokens, hidden_states=args.hidden_states, progress=progress
        )

    embeddings = []
    for result in _with_progress(classifier, files, args.quiet, run):
        if isinstance(result, Failure):
            _report_failure(result)
            failures += 1
        else:
            embeddings.append(result)
    if embeddings:
        written = save_embeddings(args.output, embeddings)
        print(f"{len(embeddings)} embeddings -> {', '.join(map(str, written))}")
    return 1 if failures else 0


def _convert(args: argparse.Namespace) -> int:
    from ast_jax.checkpoint import load_feature_extractor, load_source, save_pretrained
    from ast_jax.torch_pickle import UnsafePickleError

    try:
        config, params = load_source(
            args.source,
            strides=args.strides,
            max_length=args.max_length,
            num_attention_heads=args.heads,
            timm_exact=not args.hf_layer_norm_eps,
        )
    except (OSError, ValueError, ImportError, UnsafePickleError) as error:
        print(f"error: cannot read {args.source}: {error}", file=sys.stderr)
        return 1
    try:
        extractor = load_feature_extractor(args.source)
    except (FileNotFoundError, NotADirectoryError):  # the latter: a .pth file
        extractor = None
        print(f"warning: {args.source} has no preprocessor_config.json", file=sys.stderr)
    save_pretrained(args.output, config, params, feature_extractor=extractor)
    print(f"{args.source} -> {args.output}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    import jax

    from ast_jax.explain import explain

    if len(args.inputs) != 1:
        raise _CommandError(f"explain takes one FILE, got {len(args.inputs)}")
    file = args.inputs[0]

    try:
        config, params, extractor = load_model(resolve_model(args.model))
    except (OSError, ValueError, ImportError) as error:
        raise _CommandError(f"cannot load model {args.model}: {error}") from error
    if "classifier" not in params:
        raise _CommandError(f"{args.model} has no classifier head; explain needs labels")
    extractor = dataclasses.replace(
        extractor or FeatureExtractor(num_mel_bins=config.num_mel_bins),
        max_length=config.max_length,
    )
    try:
        waveform = load_audio(file, extractor.sampling_rate)
        start = round(args.start * extractor.sampling_rate)
        output = extractor(
            waveform[start:], sampling_rate=extractor.sampling_rate, return_num_frames=True
        )
    except (OSError, ValueError) as error:
        print(f"error: {file}: {error}", file=sys.stderr)
        return 1
    values, frames = output["input_values"], int(output["num_frames"][0])  # (1, T, F)
    result = jax.jit(explain, static_argnames="config")(params, config, values)
    scores = np.asarray(activate(result["logits"], default_activation(config)))[0]  # (C,)
    top = [(config.labels[i], float(scores[i])) for i in np.argsort(-scores)[: args.top_k]]
    _save_explanation(
        values[0, :frames],
        np.asarray(result["heatmap"][0]),
        config,
        top,
        args.output,
        title=f"{file.name} from {args.start:g} s: attention rollout",
    )
    print(f"{file}: {', '.join(f'{label} {score:.3f}' for label, score in top)}")
    print(f"{file}: attention map -> {args.output}")
    return 0


def _save_explanation(
    values: np.ndarray,
    heatmap: np.ndarray,
    config: ASTConfig,
    top: list[tuple[str, float]],
    path: Path,
    title: str,
) -> None:
    """Draw ``(T, F)`` features with the ``(f_dim, t_dim)`` rollout heatmap over them."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4), layout="constrained")
    axes.imshow(values.T, origin="lower", aspect="auto", cmap="gray", interpolation="nearest")
    # Patch (fi, ti) covers bins fi*fs .. fi*fs+P and frames ti*ts .. ti*ts+P: centre the cells.
    fs, ts, half = config.frequency_stride, config.time_stride, config.patch_size / 2
    extent = (half - ts / 2, half + (config.t_dim - 0.5) * ts)
    extent += (half - fs / 2, half + (config.f_dim - 0.5) * fs)
    image = axes.imshow(
        heatmap,
        origin="lower",
        aspect="auto",
        cmap="inferno",
        alpha=0.55,
        extent=extent,
        interpolation="bilinear",
    )
    axes.set(xlim=(0, len(values)), ylim=(0, values.shape[1]), title=title)
    axes.set(xlabel="frame (10 ms)", ylabel="mel bin")
    text = "\n".join(f"{label}: {score:.3f}" for label, score in top)
    axes.text(0.01, 0.98, text, transform=axes.transAxes, va="top", color="white", fontsize=9)
    figure.colorbar(image, ax=axes, label="attention share")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _info(args: argparse.Namespace) -> int:
    classifier = _load_classifier(args)
    config = classifier.config
    windowing = classifier.windowing
    frame_seconds = windowing.options.frame_shift / 1000
    info = {
        "model": str(resolve_model(args.model)),
        "head": classifier.has_head,
        "parameters": classifier.num_params,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "patch_size": config.patch_size,
        "strides": [config.frequency_stride, config.time_stride],
        "max_length": config.max_length,
        "num_mel_bins": config.num_mel_bins,
        "sampling_rate": classifier.extractor.sampling_rate,
        "window_seconds": round(windowing.window_frames * frame_seconds, 6),
        "num_labels": config.num_labels,
        "problem_type": config.problem_type,
        "activation": classifier.activation,
        "labels": list(config.labels),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "labels":
                value = ", ".join(value[:10]) + (", ..." if len(value) > 10 else "")
            print(f"{key}: {value}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


_MODEL_HELP = (
    "an optional leading MODEL: a checkpoint directory (ast-jax or Hugging Face), a hub id or a "
    f"bundled model ({', '.join(BUNDLED_MODELS)}); default: the bundled {DEFAULT_BUNDLED_MODEL}"
)


def _add_model_and_inputs(parser: argparse.ArgumentParser, inputs: str, count: str) -> None:
    """``[MODEL] INPUTS``: the leading MODEL is optional (see `_split_model`)."""
    parser.add_argument(
        "arguments", nargs=count, metavar=inputs, help=f"{inputs}, after {_MODEL_HELP}"
    )
    parser.set_defaults(inputs_name=inputs)


def _names_model(argument: str) -> bool:
    """Whether a leading argument names a model rather than audio: a bundled model, a checkpoint
    directory (it holds config.json), or anything else that is not a local path or an audio file
    name (a hub id; a mistyped path then fails to load as a model, naming it)."""
    path = Path(argument)
    if argument in BUNDLED_MODELS:
        return True
    if path.exists():
        return path.is_dir() and (path / "config.json").is_file()
    return path.suffix.lower() not in AUDIO_EXTENSIONS


def _split_model(args: argparse.Namespace) -> None:
    """Set ``args.model`` (None: the bundled model) and ``args.inputs`` from ``args.arguments``."""
    arguments = list(args.arguments)
    args.model = arguments.pop(0) if arguments and _names_model(arguments[0]) else None
    if not arguments:
        raise _CommandError(f"no {args.inputs_name} given after the model")
    args.inputs = [Path(argument) for argument in arguments]


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        type=float,
        help="window length in seconds (default: the model's input, e.g. 10.24 s)",
    )
    parser.add_argument(
        "--hop", type=float, help="seconds between window starts (default: the window)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=8, help="windows per model call"
    )
    parser.add_argument(
        "--length-bucket",
        type=_positive_int,
        metavar="COLUMNS",
        help="run windows shorter than the model's input unpadded, at lengths rounded up to "
        "COLUMNS patch columns (faster; scores differ from padded inference, see README)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ast-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser(
        "classify", help="labels and scores of audio files, per clip and per window"
    )
    _add_model_and_inputs(classify, "FILES_OR_DIRS", "+")
    classify.add_argument(
        "--top-k", type=_positive_int, default=5, help="labels per clip and window"
    )
    _add_window_arguments(classify)
    classify.add_argument("--aggregate", choices=AGGREGATES, default="mean")
    classify.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        help="score function (default: sigmoid for multi-label models, softmax otherwise)",
    )
    classify.add_argument("--format", choices=("table", "json", "csv"), default="table")
    classify.add_argument("--per-window", action="store_true", help="also print window scores")
    classify.add_argument(
        "--timeline",
        type=Path,
        metavar="DIR",
        help="draw top labels over time to DIR/<name>.png (name clash: DIR/<dir>__<name>.png)",
    )
    classify.set_defaults(run=_classify)

    embed = commands.add_parser("embed", help="pooled (and token, layer) embeddings of audio")
    _add_model_and_inputs(embed, "FILES_OR_DIRS", "+")
    embed.add_argument(
        "-o", "--output", type=Path, required=True, help="output .npy, .npz or .safetensors"
    )
    embed.add_argument("--tokens", action="store_true", help="also save last hidden states")
    embed.add_argument(
        "--hidden-states", action="store_true", help="also save every layer's hidden states"
    )
    _add_window_arguments(embed)
    embed.set_defaults(run=_embed)

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

    convert = commands.add_parser(
        "convert",
        help="Hugging Face checkpoint (directory or hub id) or original .pth -> ast-jax directory",
    )
    convert.add_argument("source", help="Hugging Face directory, hub id or original .pth file")
    convert.add_argument("output", type=Path, help="ast-jax checkpoint directory to write")
    original = convert.add_argument_group("original .pth checkpoints")
    original.add_argument(
        "--strides",
        type=_positive_int,
        nargs=2,
        metavar=("FREQUENCY", "TIME"),
        help="patch strides (default: from a name like audioset_10_10_0.4593.pth)",
    )
    original.add_argument(
        "--max-length", type=_positive_int, help="input frames (default: 1024, 512 or 128)"
    )
    original.add_argument("--heads", type=_positive_int, help="attention heads (default: D / 64)")
    original.add_argument(
        "--hf-layer-norm-eps",
        action="store_true",
        help="HF's LayerNorm eps 1e-12 instead of the original timm 1e-6 (head 1e-5)",
    )
    convert.set_defaults(run=_convert)

    explain = commands.add_parser(
        "explain", help="draw a clip's spectrogram with its attention-rollout map and top labels"
    )
    _add_model_and_inputs(explain, "FILE", "+")
    explain.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    explain.add_argument("--start", type=float, default=0.0, help="window start in seconds")
    explain.add_argument("--top-k", type=_positive_int, default=5, help="labels to print")
    explain.set_defaults(run=_explain)

    info = commands.add_parser("info", help="a model's configuration, size and labels")
    info.add_argument("model", nargs="?", metavar="MODEL", help=_MODEL_HELP)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info, batch_size=1, window=None, hop=None, length_bucket=None)
    add_training_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "arguments"):
            _split_model(args)
        return args.run(args)
    except _CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
