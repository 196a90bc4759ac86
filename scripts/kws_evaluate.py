#!/usr/bin/env python3
"""Evaluate a keyword-spotting checkpoint per class: accuracy on all 12 classes, on the clips of
the ten command words, per class, and the most frequent confusions.

    .venv/bin/python scripts/kws_evaluate.py runs/kws12/train/model_wa data/kws/test -o out.json
"""

from __future__ import annotations

import argparse
import collections
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


def scores_of(model: Path, data: Path, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, list]:
    """``(scores (N, C), true class indices (N,), labels)`` of ``model`` on ``data``."""
    config, params = load_pretrained(model)
    extractor = load_feature_extractor(model)
    dataset = load_dataset(data, labels=config.labels)
    source = AudioStream(dataset, extractor, batch_size=batch_size)
    network = ASTForAudioClassification(resolve_attention(config))
    predict_fn = make_predict(
        network, default_activation(config), extractor.mean, extractor.std, extractor
    )
    scores = evaluate_source(predict_fn, params, source, None)
    return scores, dataset.targets, list(dataset.labels)


def summarise(scores: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """Accuracy (all classes, command words), per-class accuracy and the top confusions."""
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
    return {
        **evaluate(scores, targets),
        "examples": len(truth),
        "command_word_accuracy": float(np.mean(predicted[core] == truth[core])),
        "command_word_examples": int(core.sum()),
        "per_class": per_class,
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
