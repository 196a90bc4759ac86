#!/usr/bin/env python3
"""Evaluate a keyword-spotting checkpoint per class: accuracy on all 12 classes, on the clips of
the ten command words, per class, per voice (clips of `kws_engines.py`, whose ``clips.csv`` names
each clip's voice) and the most frequent confusions.

    .venv/bin/python scripts/kws_evaluate.py runs/kws12/train/model_wa data/kws/test -o out.json
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ast_jax.checkpoints.pretrained import load_feature_extractor, load_pretrained
from ast_jax.model.attention import resolve_attention
from ast_jax.model.modules import ASTForAudioClassification
from ast_jax.model.scores import default_activation
from ast_jax.training.datasets import load_dataset
from ast_jax.training.loop import evaluate_source
from ast_jax.training.metrics import evaluate
from ast_jax.training.pipeline import AudioStream
from ast_jax.training.step import make_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_kws_dataset as kws


def scores_of(
    model: Path, data: Path, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, list, list[str] | None]:
    """``(scores (N, C), targets (N, C), labels, voices)`` of ``model`` on ``data``; ``voices``
    (each clip's, `voices_of`) is None unless every clip has one."""
    config, params = load_pretrained(model)
    extractor = load_feature_extractor(model)
    dataset = load_dataset(data, labels=config.labels)
    source = AudioStream(dataset, extractor, batch_size=batch_size)
    network = ASTForAudioClassification(resolve_attention(config))
    predict_fn = make_predict(
        network, default_activation(config), extractor.mean, extractor.std, extractor
    )
    scores = evaluate_source(predict_fn, params, source, None)
    return scores, dataset.targets, list(dataset.labels), voices_of(dataset.paths)


def voices_of(paths: list[Path]) -> list[str] | None:
    """The voice of each clip, from the ``clips.csv`` of its engine's folder
    (``<engine>/{train,test}/<label>/<n>.wav``, as `kws_engines.py` writes them); None when a
    clip is not listed in one (espeak-ng's clips, other data)."""
    split_label_name = lambda path: Path(path).parts[-3:]  # ("test", "yes", "00000.wav")
    tables: dict[Path, dict[tuple[str, ...], str]] = {}
    voices = []
    for path in paths:
        folder = Path(path).parents[2]
        if folder not in tables:
            listing = folder / "clips.csv"
            rows = list(csv.DictReader(listing.open())) if listing.exists() else []
            tables[folder] = {split_label_name(row["path"]): row["voice"] for row in rows}
        voice = tables[folder].get(split_label_name(path))
        if voice is None:
            return None
        voices.append(voice)
    return voices


def summarise(
    scores: np.ndarray, targets: np.ndarray, labels: list[str], voices: list[str] | None = None
) -> dict:
    """Accuracy (all classes, command words), per-class accuracy, command-word accuracy per voice
    (given ``voices``, one per clip) and the top confusions."""
    truth, predicted = targets.argmax(1), scores.argmax(1)
    core = np.isin(truth, [labels.index(word) for word in kws.CORE_WORDS])
    per_class = {
        label: round(float(np.mean(predicted[truth == index] == index)), 4)
        for index, label in enumerate(labels)
        if np.any(truth == index)
    }
    errors = collections.Counter(
        f"{labels[t]} -> {labels[p]}" for t, p in zip(truth, predicted, strict=True) if t != p
    )
    per_voice = {}
    if voices is not None:
        voices = np.asarray(voices)
        for voice in sorted(set(voices[core])):
            clips = core & (voices == voice)
            per_voice[voice] = round(float(np.mean(predicted[clips] == truth[clips])), 4)
    return {
        **evaluate(scores, targets),
        "examples": len(truth),
        "command_word_accuracy": float(np.mean(predicted[core] == truth[core])),
        "command_word_examples": int(core.sum()),
        "per_class": per_class,
        **({"per_voice_command_words": per_voice} if per_voice else {}),
        "top_errors": dict(errors.most_common(10)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, nargs="+", help="folders or CSV manifests")
    parser.add_argument("-o", "--output", type=Path, help="JSON: one summary per data argument")
    args = parser.parse_args(argv)
    results = {str(data): summarise(*scores_of(args.model, data)) for data in args.data}
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
