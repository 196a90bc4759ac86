#!/usr/bin/env python3
"""Classify a folder of WAV files with an exported ast-jax artifact, without ast-jax.

    python examples/serve_exported.py exported/ clips/ [--top-k 3] [--batch-size 8] [--format json]

``exported/`` is what ``ast-jax export MODEL exported/`` wrote: ``metadata.json`` and
``model.stablehlo`` (needs only ``jax`` and ``numpy``; runs on whichever of the exported platforms
this host's JAX has: CPU, an NVIDIA GPU with ``jax[cuda12]``, a TPU with ``jax[tpu]``) or
``model.onnx`` (needs only ``onnxruntime`` and ``numpy``). The artifact must take waveforms
(``--input waveform``, the default).

WAV files are read with the standard library's ``wave`` (8/16/24/32-bit integer PCM; channels
averaged), or with ``soundfile`` when it is installed (which also reads float WAV, FLAC, ...).
Audio must already be at the model's sampling rate: resample first (e.g. ``sox in.wav -r 16000
out.wav``). Each file is cut as ``ast-jax classify`` cuts it: windows of ``num_samples`` samples
every ``hop_samples``, a shorter last window for a remaining tail, a short file as one shorter
window (its length goes in with it, so it is featurised as the clip itself); the file's scores are
the mean of its windows' scores.

Exit codes: 0 every file classified, 1 some file failed (reported on stderr), 2 cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# What this script reads from metadata.json.
_NEEDED = (
    "format",
    "file",
    "input",
    "sampling_rate",
    "num_samples",
    "hop_samples",
    "frame_length_samples",
    "frame_shift_samples",
    "labels",
    "score",
)


def load_artifact(directory: Path) -> tuple[dict, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """``metadata.json`` and a function ``(waveforms (B, S) float32, lengths (B,) int32) ->
    logits (B, C) float32``."""
    meta = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    missing = sorted(set(_NEEDED) - set(meta))
    if missing:
        raise ValueError(f"metadata.json lacks {missing}: export it again")
    if meta["input"] != "waveform":
        raise ValueError(f"{directory} takes {meta['input']}, not waveforms: export it again")
    path = directory / meta["file"]
    if meta["format"] == "stablehlo":
        import jax

        exported = jax.export.deserialize(bytearray(path.read_bytes()))
        call = jax.jit(exported.call)  # compiled once per batch size

        def run(waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            return np.asarray(call(waveforms, lengths))

        return meta, run
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: not the notes on initializers it drops
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run_onnx(waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"waveforms": waveforms, "lengths": lengths})[0]

    return meta, run_onnx


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sampling rate."""
    try:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return data.mean(axis=1, dtype=np.float32), rate
    except ImportError:
        pass
    with wave.open(str(path), "rb") as file:
        width, channels, rate = file.getsampwidth(), file.getnchannels(), file.getframerate()
        raw = file.readframes(file.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:  # 24-bit: widen to 32 bits, sign from the top byte
        bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        padded = np.zeros((bytes3.shape[0], 4), np.uint8)
        padded[:, 1:] = bytes3
        samples = padded.view("<i4").ravel().astype(np.float32) / 2**31
    else:
        dtype = {2: "<i2", 4: "<i4"}[width]
        samples = np.frombuffer(raw, dtype).astype(np.float32) / 2 ** (8 * width - 1)
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32), rate


def windows(signal: np.ndarray, meta: dict) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, samples)`` of each window, as ``ast-jax classify`` cuts them."""
    size, hop = meta["num_samples"], meta["hop_samples"]
    frame, shift = meta["frame_length_samples"], meta["frame_shift_samples"]
    frames_per_window = (size - frame) // shift + 1
    total_frames = (signal.size - frame) // shift + 1 if signal.size >= frame else 0
    start, covered = 0, 0
    while start + size <= signal.size:
        yield start, signal[start : start + size]
        covered = start // shift + frames_per_window
        start += hop
    if covered == 0 or covered < total_frames:
        yield start, signal[start:]


def scores(logits: np.ndarray, kind: str) -> np.ndarray:
    """The score function the model was trained for."""
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-logits))
    if kind == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


def classify(
    files: list[Path], meta: dict, run: Callable, batch_size: int
) -> Iterator[dict | Exception]:
    """One result per file (or the exception that stopped it), in order."""
    size = meta["num_samples"]
    pending: list[tuple[int, int, np.ndarray]] = []  # (file index, start, samples)
    results: list[dict | Exception] = []
    for index, path in enumerate(files):
        try:
            signal, rate = read_audio(path)
            if rate != meta["sampling_rate"]:
                raise ValueError(f"{rate} Hz; the model takes {meta['sampling_rate']} Hz")
            if signal.size < meta["frame_length_samples"]:
                raise ValueError(f"shorter than one frame ({meta['frame_length_samples']} samples)")
        except (OSError, ValueError, KeyError, EOFError, RuntimeError, wave.Error) as error:
            results.append(error)
            continue
        results.append({"file": str(path), "duration": signal.size / rate, "windows": []})
        pending += [(index, start, samples) for start, samples in windows(signal, meta)]
    for first in range(0, len(pending), batch_size):
        batch = pending[first : first + batch_size]
        waveforms = np.zeros((len(batch), size), np.float32)
        lengths = np.zeros(len(batch), np.int32)
        for row, (_, _, samples) in enumerate(batch):
            waveforms[row, : samples.size] = samples
            lengths[row] = samples.size
        logits = run(waveforms, lengths)
        for (index, start, samples), row in zip(batch, logits, strict=True):
            rate = meta["sampling_rate"]
            window = {"start": start / rate, "end": (start + samples.size) / rate}
            results[index]["windows"].append({**window, "logits": row.tolist()})
    for result in results:
        if isinstance(result, dict):
            logits = np.array([w["logits"] for w in result["windows"]], np.float32)
            result["scores"] = scores(logits, meta["score"]).mean(axis=0).tolist()
        yield result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="directory written by ast-jax export")
    parser.add_argument("inputs", type=Path, nargs="+", help="WAV files or folders of them")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    try:
        meta, run = load_artifact(args.artifact)
    except (OSError, ValueError, KeyError, ImportError) as error:
        print(f"error: cannot load {args.artifact}: {error}", file=sys.stderr)
        return 2
    files = []
    for path in args.inputs:
        files += sorted(path.rglob("*.wav")) if path.is_dir() else [path]
    failed = 0
    for path, result in zip(files, classify(files, meta, run, args.batch_size), strict=True):
        if isinstance(result, Exception):
            print(f"error: {path}: {result}", file=sys.stderr)
            failed += 1
            continue
        top = np.argsort(result["scores"])[::-1][: args.top_k]
        result["top"] = [[meta["labels"][i], result["scores"][i]] for i in top]
        if args.format == "json":
            print(json.dumps(result))
        else:
            labels = "  ".join(f"{label} {score:.3f}" for label, score in result["top"])
            print(f"{path}  {labels}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
