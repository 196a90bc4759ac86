"""The inference commands: ``classify``, ``embed``, ``info`` and ``explain``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ast_jax.checkpoints.bundled import DEFAULT_BUNDLED_MODEL
from ast_jax.cli.common import (
    EXIT_INPUT_FAILED,
    EXIT_OK,
    MODEL_HELP,
    CommandError,
    add_format,
    add_model_and_inputs,
    add_output,
    add_quiet,
    expand_inputs,
    positive_int,
    report,
)
from ast_jax.cli.output import FORMATS, output_names, print_results, summary
from ast_jax.inference.embeddings import EMBEDDING_FORMATS, save_embeddings
from ast_jax.inference.results import AGGREGATES, Classification, Embedding, Failure
from ast_jax.model.scores import ACTIVATIONS

if TYPE_CHECKING:
    from ast_jax.inference.classifier import AudioClassifier

__all__ = ["add_commands"]

# Fewer windows than this finish in a blink; a progress bar would only add noise.
_PROGRESS_MIN_WINDOWS = 32


def _load_checkpoint(model: str | None) -> tuple[Any, Any, Any]:
    """``(config, params, extractor)`` of MODEL (None: the bundled model); exit 2 on failure."""
    from ast_jax.checkpoints.sources import load_model, resolve_model

    try:
        return load_model(resolve_model(model))
    except (OSError, ValueError, ImportError) as error:
        raise CommandError(f"cannot load model {model}: {error}") from error


def _load_classifier(args: argparse.Namespace, **options: str | None) -> AudioClassifier:
    """The classifier of ``args.model`` with the window options; failures exit with code 2."""
    from ast_jax.inference.classifier import AudioClassifier

    checkpoint = _load_checkpoint(args.model)
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
        raise CommandError(str(error)) from error


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


def _classify(args: argparse.Namespace) -> int:
    files, failures = expand_inputs(args.inputs)
    classifier = _load_classifier(args, activation=args.activation, aggregate=args.aggregate)
    results = []
    timeline_names = output_names(files, ".png")
    for result in _with_progress(classifier, files, args.quiet, classifier.classify_iter):
        if isinstance(result, Failure):
            report(f"{result.source}: {result.error}")
            failures += 1
            continue
        results.append(summary(result, args.top_k, args.per_window))
        if args.timeline is not None:
            from ast_jax.plots import save_timeline

            save_timeline(
                result.window_scores,
                result.window_times,
                result.labels,
                args.timeline / timeline_names[str(result.source)],
                title=Path(result.source).name,
            )
    print_results(results, args.format)
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _embed(args: argparse.Namespace) -> int:
    if args.output.suffix not in EMBEDDING_FORMATS:
        raise CommandError(f"-o must end in one of {', '.join(EMBEDDING_FORMATS)}")
    if args.output.suffix == ".npy" and (args.tokens or args.hidden_states):
        raise CommandError("--tokens and --hidden-states need -o .npz or .safetensors")
    files, failures = expand_inputs(args.inputs)
    classifier = _load_classifier(args)

    def run(paths, progress):
        return classifier.embed_iter(
            paths, tokens=args.tokens, hidden_states=args.hidden_states, progress=progress
        )

    embeddings = []
    for result in _with_progress(classifier, files, args.quiet, run):
        if isinstance(result, Failure):
            report(f"{result.source}: {result.error}")
            failures += 1
        else:
            embeddings.append(result)
    if embeddings:
        try:
            written = save_embeddings(args.output, embeddings)
        except OSError as error:
            raise CommandError(f"cannot write {args.output}: {error}") from error
        print(f"{len(embeddings)} embeddings -> {', '.join(map(str, written))}")
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from ast_jax.frontend.audio import load_audio
    from ast_jax.frontend.extractor import default_extractor
    from ast_jax.model.attention import resolve_attention
    from ast_jax.model.attention_maps import explain
    from ast_jax.model.params import has_head
    from ast_jax.model.scores import activate, default_activation
    from ast_jax.plots import save_explanation

    if len(args.inputs) != 1:
        raise CommandError(f"explain takes one FILE, got {len(args.inputs)}")
    file = args.inputs[0]
    config, params, extractor = _load_checkpoint(args.model)
    if not has_head(params):
        raise CommandError(f"{args.model} has no classifier head; explain needs labels")
    extractor = dataclasses.replace(
        extractor or default_extractor(config), max_length=config.max_length
    )
    try:
        waveform = load_audio(file, extractor.sampling_rate)
        start = round(args.start * extractor.sampling_rate)
        output = extractor(
            waveform[start:], sampling_rate=extractor.sampling_rate, return_num_frames=True
        )
    except (OSError, ValueError) as error:
        report(f"{file}: {error}")
        return EXIT_INPUT_FAILED
    values, frames = output["input_values"], int(output["num_frames"][0])  # (1, T, F)
    explain_fn = jax.jit(explain, static_argnames="config")
    result = explain_fn(params, resolve_attention(config), values)
    scores = np.asarray(activate(result["logits"], default_activation(config)))[0]  # (C,)
    top = [(config.labels[i], float(scores[i])) for i in np.argsort(-scores)[: args.top_k]]
    try:
        save_explanation(
            values[0, :frames],
            np.asarray(result["heatmap"][0]),
            config,
            extractor.fbank_options,
            top,
            args.output,
            title=f"{file.name} from {args.start:g} s: attention rollout",
            start=args.start,
        )
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error}") from error
    print(f"{file}: {', '.join(f'{label} {score:.3f}' for label, score in top)}")
    print(f"{file}: attention map -> {args.output}")
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from ast_jax.checkpoints.sources import resolve_model

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
        "attention": config.attention,
        "labels": list(config.labels),
    }
    if args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "labels":
                value = ", ".join(value[:10]) + (", ..." if len(value) > 10 else "")
            print(f"{key}: {value}")
    return EXIT_OK


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        type=float,
        help="window length in seconds (default: the model's input, e.g. 10.24 s)",
    )
    parser.add_argument(
        "--hop", type=float, help="seconds between window starts (default: the window)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per model call")
    parser.add_argument(
        "--length-bucket",
        type=positive_int,
        metavar="COLUMNS",
        help="run windows shorter than the model's input unpadded, at lengths rounded up to "
        "COLUMNS patch columns (faster; scores differ from padded inference, see README)",
    )
    add_quiet(parser)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``classify``, ``embed``, ``info`` and ``explain``."""
    classify = commands.add_parser(
        "classify", help="labels and scores of audio files, per clip and per window"
    )
    add_model_and_inputs(classify, "FILES_OR_DIRS", "+")
    classify.add_argument(
        "--top-k", type=positive_int, default=5, help="labels per clip and window"
    )
    _add_window_arguments(classify)
    classify.add_argument("--aggregate", choices=AGGREGATES, default="mean")
    classify.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        help="score function (default: sigmoid for multi-label models, softmax otherwise)",
    )
    add_format(classify, FORMATS)
    classify.add_argument("--per-window", action="store_true", help="also print window scores")
    classify.add_argument(
        "--timeline",
        type=Path,
        metavar="DIR",
        help="draw top labels over time to DIR/<name>.png (name clash: DIR/<dir>__<name>.png)",
    )
    classify.set_defaults(run=_classify)

    embed = commands.add_parser("embed", help="pooled (and token, layer) embeddings of audio")
    add_model_and_inputs(embed, "FILES_OR_DIRS", "+")
    add_output(embed, "output .npy, .npz or .safetensors")
    embed.add_argument("--tokens", action="store_true", help="also save last hidden states")
    embed.add_argument(
        "--hidden-states", action="store_true", help="also save every layer's hidden states"
    )
    _add_window_arguments(embed)
    embed.set_defaults(run=_embed)

    explain = commands.add_parser(
        "explain", help="draw a clip's spectrogram with its attention-rollout map and top labels"
    )
    add_model_and_inputs(explain, "FILE", "+")
    add_output(explain, "PNG to write")
    explain.add_argument("--start", type=float, default=0.0, help="window start in seconds")
    explain.add_argument("--top-k", type=positive_int, default=5, help="labels to print")
    explain.set_defaults(run=_explain)

    info = commands.add_parser("info", help="a model's configuration, size and labels")
    info.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help=f"{MODEL_HELP}; default: the bundled {DEFAULT_BUNDLED_MODEL}",
    )
    add_format(info, ("table", "json"))
    info.set_defaults(run=_info, batch_size=1, window=None, hop=None, length_bucket=None)
