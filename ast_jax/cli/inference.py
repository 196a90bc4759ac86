"""The inference commands: ``classify``, ``embed``, ``info``, ``explain``, and ``merge`` (the parts
of a ``classify`` or ``embed`` run with ``--parts``, `ast_jax.inference.parts`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ast_jax.checkpoints.bundled import DEFAULT_BUNDLED_MODEL
from ast_jax.cli.common import (
    EXIT_INPUT_FAILED,
    EXIT_OK,
    LOAD_ERRORS,
    MODEL_HELP,
    CommandError,
    add_distributed,
    add_format,
    add_model_and_inputs,
    add_output,
    add_quiet,
    expand_inputs,
    positive_int,
    report,
    report_failure,
    start_distributed,
)
from ast_jax.cli.output import FORMATS, output_names, print_results, summary
from ast_jax.inference.embeddings import EMBEDDING_FORMATS, save_embeddings
from ast_jax.inference.parts import PART_SIZE
from ast_jax.inference.results import AGGREGATES, Classification, Embedding, Failure
from ast_jax.model.scores import ACTIVATIONS

if TYPE_CHECKING:
    from ast_jax.inference.classifier import AudioClassifier

__all__ = ["add_commands"]

# Fewer windows than this finish in a blink; a progress bar would only add noise.
_PROGRESS_MIN_WINDOWS = 32
# The options of classify and embed, besides their own, that change a run's results.
_RESULT_OPTIONS = ("window", "hop", "length_bucket", "batch_size")


def _load_checkpoint(model: str | None) -> tuple[Any, Any, Any]:
    """``(config, params, extractor)`` of MODEL (None: the bundled model); exit 2 on failure."""
    from ast_jax.checkpoints.sources import load_model, resolve_model

    try:
        return load_model(resolve_model(model))
    except LOAD_ERRORS as error:
        raise CommandError(
            f"cannot load model {model or DEFAULT_BUNDLED_MODEL}: {error}"
        ) from error


def _load_classifier(
    args: argparse.Namespace, checkpoint: tuple | None = None, **options: str | None
) -> AudioClassifier:
    """The classifier of ``args.model`` (or of ``checkpoint``, already loaded) with the window
    options; failures exit with code 2."""
    from ast_jax.inference.classifier import AudioClassifier

    checkpoint = checkpoint or _load_checkpoint(args.model)
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


def _start_processes(args: argparse.Namespace) -> None:
    """Joins the multi-process run the flags ask for; one needs ``--parts`` (each process runs
    its own parts)."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    asked = args.distributed or any(value is not None for value in explicit)
    if asked and args.parts is None:
        raise CommandError(
            "a multi-process run writes its results in parts: give --parts DIR, then run "
            "ast-jax merge DIR"
        )
    start_distributed(args)


def _run_parts(
    args: argparse.Namespace,
    files: Sequence[Path],
    input_errors: list[str],
    checkpoint: tuple,
    options: dict[str, Any],
    info: dict[str, Any],
    compute: Callable[[list[Path]], Iterator[Any]],
) -> int:
    """Runs this process's unwritten parts of ``files`` in ``args.parts`` (`compute` gives one
    outcome per input); exit code 1 if an input failed."""
    import jax
    from tqdm import tqdm

    from ast_jax.inference.parts import (
        PartsError,
        assigned_parts,
        fingerprint_model,
        start_parts,
        write_parts,
    )

    try:
        run = start_parts(
            args.parts,
            kind=args.command,
            inputs=files,
            part_size=args.part_size,
            model_sha256=fingerprint_model(*checkpoint),
            options=options,
            info={"model": args.model or DEFAULT_BUNDLED_MODEL, **info},
        )
    except PartsError as error:
        raise CommandError(str(error)) from error
    except OSError as error:
        raise CommandError(f"cannot write {args.parts}: {error}") from error
    index, count = jax.process_index(), jax.process_count()
    mine = assigned_parts(run.num_parts, index, count)
    todo = [part for part in mine if not run.is_written(part)]
    inputs = [files[i] for part in todo for i in run.span(part)]
    failures = len(input_errors)
    disable = args.quiet or len(inputs) < _PROGRESS_MIN_WINDOWS
    with tqdm(total=len(inputs), unit="input", disable=disable, file=sys.stderr) as bar:

        def counted() -> Iterator[Any]:
            nonlocal failures
            for outcome in compute(inputs):
                failures += isinstance(outcome, Failure)
                bar.update(1)
                yield outcome

        try:
            for _ in write_parts(run, todo, counted()):
                pass
        except OSError as error:
            raise CommandError(f"cannot write {args.parts}: {error}") from error
    print(
        f"{run.directory}: process {index} of {count} wrote {len(todo)} parts, skipped "
        f"{len(mine) - len(todo)} already written ({run.num_parts} parts in all; "
        f"ast-jax merge {run.directory} joins them)"
    )
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _classify(args: argparse.Namespace) -> int:
    _start_processes(args)
    input_errors: list[str] = []
    files, failures = expand_inputs(args.inputs, input_errors)
    checkpoint = _load_checkpoint(args.model)
    classifier = _load_classifier(
        args, checkpoint, activation=args.activation, aggregate=args.aggregate
    )
    timeline_names = output_names(files, ".png")

    def outcome(result: Classification | Failure) -> dict[str, Any] | Failure:
        """A failure (reported), or the JSON record of a result (its timeline drawn)."""
        if isinstance(result, Failure):
            report_failure(result.source, result.error)
            return result
        if args.timeline is not None:
            from ast_jax.plots import save_timeline

            save_timeline(
                result.window_scores,
                result.window_times,
                result.labels,
                args.timeline / timeline_names[str(result.source)],
                title=Path(result.source).name,
            )
        return summary(result, args.top_k, args.per_window)

    if args.parts is not None:
        options = {
            name: getattr(args, name)
            for name in ("top_k", "per_window", "aggregate", "activation", *_RESULT_OPTIONS)
        }
        info = {"format": args.format, "input_errors": input_errors}
        return _run_parts(
            args,
            files,
            input_errors,
            checkpoint,
            options,
            info,
            lambda paths: map(outcome, classifier.classify_iter(paths)),
        )
    results = []
    for result in _with_progress(classifier, files, args.quiet, classifier.classify_iter):
        record = outcome(result)
        if isinstance(record, Failure):
            failures += 1
        else:
            results.append(record)
    print_results(results, args.format)
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _check_embedding_output(output: Path, tokens: bool, hidden_states: bool) -> None:
    if output.suffix not in EMBEDDING_FORMATS:
        raise CommandError(f"-o must end in one of {', '.join(EMBEDDING_FORMATS)}")
    if output.suffix == ".npy" and (tokens or hidden_states):
        raise CommandError("--tokens and --hidden-states need -o .npz or .safetensors")


def _save_embeddings(output: Path, embeddings: list[Embedding]) -> None:
    """Writes the embeddings (if any) and says where."""
    if embeddings:
        try:
            written = save_embeddings(output, embeddings)
        except OSError as error:
            raise CommandError(f"cannot write {output}: {error}") from error
        print(f"{len(embeddings)} embeddings -> {', '.join(map(str, written))}")


def _embed(args: argparse.Namespace) -> int:
    _check_embedding_output(args.output, args.tokens, args.hidden_states)
    _start_processes(args)
    input_errors: list[str] = []
    files, failures = expand_inputs(args.inputs, input_errors)
    checkpoint = _load_checkpoint(args.model)
    classifier = _load_classifier(args, checkpoint)

    def run(paths, progress=None):
        return classifier.embed_iter(
            paths, tokens=args.tokens, hidden_states=args.hidden_states, progress=progress
        )

    def outcome(result: Embedding | Failure) -> Embedding | Failure:
        if isinstance(result, Failure):
            report_failure(result.source, result.error)
        return result

    if args.parts is not None:
        options = {
            name: getattr(args, name) for name in ("tokens", "hidden_states", *_RESULT_OPTIONS)
        }
        info = {"output": str(args.output), "input_errors": input_errors}
        return _run_parts(
            args,
            files,
            input_errors,
            checkpoint,
            options,
            info,
            lambda paths: map(outcome, run(paths)),
        )
    embeddings = []
    for result in _with_progress(classifier, files, args.quiet, run):
        if isinstance(outcome(result), Failure):
            failures += 1
        else:
            embeddings.append(result)
    _save_embeddings(args.output, embeddings)
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    from ast_jax.files import atomic_write
    from ast_jax.inference.parts import PartsError, merge_parts

    try:
        merged = merge_parts(args.directory)
    except PartsError as error:
        raise CommandError(str(error)) from error
    settings = merged.run.settings
    input_errors = settings.get("input_errors", [])
    for message in input_errors:
        report(message)
    for source, error in merged.failures:
        report_failure(source, error)
    failed = len(input_errors) + len(merged.failures)
    if merged.run.kind == "embed":
        output = args.output or Path(settings["output"])
        options = settings["options"]
        _check_embedding_output(output, options["tokens"], options["hidden_states"])
        _save_embeddings(output, merged.results)
    elif args.output is None:
        print_results(merged.results, args.format or settings.get("format", "table"))
    else:
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            print_results(merged.results, args.format or settings.get("format", "table"))
        try:
            atomic_write(
                args.output, lambda temp: Path(temp).write_text(text.getvalue(), encoding="utf-8")
            )
        except OSError as error:
            raise CommandError(f"cannot write {args.output}: {error}") from error
        print(f"{len(merged.results)} results -> {args.output}")
    return EXIT_INPUT_FAILED if failed else EXIT_OK


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
        report_failure(file, error)
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
            if key == "labels":  # all of them, one per line: AudioSet's 527 names hold commas
                value = "".join(f"\n  {index}: {label}" for index, label in enumerate(value))
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


def _add_parts_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "inference in parts",
        "Cut the inputs (in order) into parts of N and write each part to DIR once it is done; "
        "a run restarted with the same settings skips the parts written, and each process of a "
        "multi-process run writes the parts k with k % processes == its id. ast-jax merge DIR "
        "joins the parts into this command's ordinary output (embed: the -o file).",
    )
    group.add_argument("--parts", type=Path, metavar="DIR", help="write the results in parts here")
    group.add_argument(
        "--part-size",
        type=positive_int,
        default=PART_SIZE,
        metavar="N",
        help=f"inputs per part (default {PART_SIZE})",
    )
    add_distributed(parser)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Registers ``classify``, ``embed``, ``merge``, ``info`` and ``explain``."""
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
    _add_parts_arguments(classify)
    classify.set_defaults(run=_classify)

    embed = commands.add_parser("embed", help="pooled (and token, layer) embeddings of audio")
    add_model_and_inputs(embed, "FILES_OR_DIRS", "+")
    add_output(embed, "output .npy, .npz or .safetensors")
    embed.add_argument("--tokens", action="store_true", help="also save last hidden states")
    embed.add_argument(
        "--hidden-states", action="store_true", help="also save every layer's hidden states"
    )
    _add_window_arguments(embed)
    _add_parts_arguments(embed)
    embed.set_defaults(run=_embed)

    merge = commands.add_parser(
        "merge", help="join the parts of a classify or embed run with --parts into its output"
    )
    merge.add_argument("directory", type=Path, metavar="DIR", help="the run's --parts directory")
    add_output(
        merge,
        "embed: the embeddings file (default: the run's -o); classify: write the results here "
        "instead of stdout",
        required=False,
    )
    merge.add_argument(
        "--format", choices=FORMATS, help="classify: output format (default: the run's --format)"
    )
    merge.set_defaults(run=_merge)

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
