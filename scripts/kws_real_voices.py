#!/usr/bin/env python3
"""The keyword spotter on the only recordings of real people in Debian's archive we know of.

No dataset of real speech is reachable offline, but two Debian packages ship a few recorded words:

- ``alsa-utils``' speaker-test clips (``/usr/share/sounds/alsa``): one woman saying a loudspeaker's
  position, such as "front left" or "side right". Their second words give 3 ``left`` and 3
  ``right``; "front", "rear", "side" and "center" are 10 words no class names (``_unknown_``).
- ``ktuberling-data``'s English names of the toy's stickers (``sounds/en``): 72 words and short
  phrases ("hat", "umbrella", "palm tree"), none of them a command word: ``_unknown_``.

Each word is cut where the clip's level stays 35 dB below its peak for at least 100 ms (alsa's
clips hold two words, split at their longest pause), resampled to 16 kHz and centred in a 1-s
window of digital silence (what the recordings hold between their words). Words longer than 1 s
are left out. This is too little to estimate accuracy on real voices (one speaker says every
command word); it shows what a user trying the model on recorded speech meets first.

Output: the cut clips in ``OUT/<label>/``, their manifest ``OUT/real.csv`` and the model's
prediction per clip in ``OUT/real.json``.

    .venv/bin/python scripts/kws_real_voices.py data/kws/real [--model runs/kws12/train/model_wa]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import soundfile

from ast_jax import bundled_model_path
from ast_jax.frontend.audio import load_audio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kws_engines
import kws_evaluate
import make_kws_dataset as kws

ALSA = Path("/usr/share/sounds/alsa")
KTUBERLING = Path("/usr/share/ktuberling/sounds/en")
PACKAGES = ("alsa-utils", "ktuberling-data")
FRAME = kws.SAMPLING_RATE // 100  # 10 ms
QUIET_DB = 35.0  # a frame this far below the clip's loudest frame is a pause
MIN_PAUSE_FRAMES = 10  # 100 ms: shorter dips are inside a word


def loud_runs(audio: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges of ``audio`` between pauses (`QUIET_DB` below the loudest
    frame for at least `MIN_PAUSE_FRAMES` frames)."""
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = np.flatnonzero(level > level.max() - QUIET_DB)
    runs, start = [], loud[0]
    for previous, frame in itertools.pairwise(loud):
        if frame - previous > MIN_PAUSE_FRAMES:
            runs.append((start * FRAME, (previous + 1) * FRAME))
            start = frame
    runs.append((start * FRAME, (loud[-1] + 1) * FRAME))
    return runs


def words(audio: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` words of ``audio`` (16 kHz): its loud runs, split at the ``count - 1``
    longest pauses."""
    runs = loud_runs(audio)
    if len(runs) < count:
        raise ValueError(f"{count} words asked for, {len(runs)} found")
    pauses = sorted(range(len(runs) - 1), key=lambda i: runs[i + 1][0] - runs[i][1], reverse=True)
    cuts = sorted(pauses[: count - 1])
    bounds = [runs[0][0], *[x for i in cuts for x in (runs[i][1], runs[i + 1][0])], runs[-1][1]]
    return [audio[start:stop] for start, stop in zip(bounds[::2], bounds[1::2], strict=True)]


def centred(word: np.ndarray) -> np.ndarray:
    """``word`` in the middle of a 1-s window of zeros."""
    clip = np.zeros(kws.CLIP_SAMPLES, np.float32)
    start = (kws.CLIP_SAMPLES - len(word)) // 2
    clip[start : start + len(word)] = word
    return clip


def recorded_words() -> list[tuple[str, str, np.ndarray]]:
    """``(name, label, 16-kHz word)`` of every recorded word, alsa's first."""
    out = []
    for path in sorted(ALSA.glob("*_*.wav")):  # Front_Left.wav: "front", "left"
        spoken_words = path.stem.lower().split("_")
        said = words(load_audio(path, kws.SAMPLING_RATE), 2)
        for spoken, word in zip(spoken_words, said, strict=True):
            label = spoken if spoken in kws.CORE_WORDS else kws.UNKNOWN
            out.append((f"alsa_{path.stem}_{spoken}", label, word))
    for path in sorted(KTUBERLING.glob("*.ogg")):
        audio = load_audio(path, kws.SAMPLING_RATE)
        runs = loud_runs(audio)
        out.append((f"ktuberling_{path.stem}", kws.UNKNOWN, audio[runs[0][0] : runs[-1][1]]))
    return out


def write_clips(out: Path) -> tuple[Path, list[str]]:
    """Write the 1-s clips and their manifest; the manifest and the words left out (too long)."""
    rows, too_long = [], []
    for name, label, word in recorded_words():
        if len(word) > kws.CLIP_SAMPLES:
            too_long.append(name)
            continue
        path = out / label / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, centred(word), kws.SAMPLING_RATE, subtype="PCM_16")
        rows.append({"path": str(path.relative_to(out)), "label": label})
    manifest = out / "real.csv"
    with manifest.open("w", newline="") as file:
        writer = csv.DictWriter(file, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest, too_long


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the cut clips and results")
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    args = parser.parse_args(argv)
    kws_engines.ensure_packages(PACKAGES)
    manifest, too_long = write_clips(args.out)
    scores, targets, labels, _ = kws_evaluate.scores_of(args.model, manifest)
    paths = [row["path"] for row in csv.DictReader(manifest.open())]
    predictions = [labels[i] for i in scores.argmax(1)]
    truth = [labels[i] for i in targets.argmax(1)]
    commands = [p == t for p, t in zip(predictions, truth, strict=True) if t in kws.CORE_WORDS]
    unknown = [p for p, t in zip(predictions, truth, strict=True) if t == kws.UNKNOWN]
    result = {
        "command_words": {"clips": len(commands), "correct": int(sum(commands))},
        "unknown_words": {
            "clips": len(unknown),
            "called_unknown": unknown.count(kws.UNKNOWN),
            "called": {label: unknown.count(label) for label in sorted(set(unknown))},
        },
        "left_out_longer_than_1s": too_long,
        "clips": [
            {"path": path, "label": label, "predicted": guess, "score": round(float(s.max()), 3)}
            for path, label, guess, s in zip(paths, truth, predictions, scores, strict=True)
        ],
    }
    (args.out / "real.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("command_words", "unknown_words")}, indent=2))


if __name__ == "__main__":
    main()
