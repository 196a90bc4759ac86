#!/usr/bin/env python3
"""Markdown tables of the bundled kws12's ``training.json`` (`train_kws.py`): the
leave-one-engine-out table with each fold's voices, the shipped model per engine and per class,
the training curve and the recorded words (``real_voices.json``, `kws_real_voices.py`).

    .venv/bin/python scripts/kws_card_tables.py ast_jax/models/kws12/training.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_kws_dataset as kws


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def loeo_table(loeo: dict) -> str:
    """One row per left-out engine: training clips, epochs, minutes, accuracies."""
    lines = [
        "| engine left out | trained on (clips) | epochs | minutes | ten command words | "
        "all 12 classes | weakest command word |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine, run in loeo.items():
        test = run["test"]
        words = {word: test["per_class"][word] for word in kws.CORE_WORDS}
        weakest = min(words, key=words.get)
        lines.append(
            f"| {engine} | {run['train_clips']:,} | {run['epochs']} | "
            f"{run['train_seconds'] / 60:.1f} | **{percent(test['command_word_accuracy'])}** | "
            f"{percent(test['accuracy'])} | `{weakest}` {percent(words[weakest])} |"
        )
    return "\n".join(lines)


def loeo_voices(loeo: dict) -> str:
    """Each fold's command-word accuracy per voice of the left-out engine (where known)."""
    return "\n".join(
        f"- {engine} left out: "
        + ", ".join(f"`{voice}` {percent(value)}" for voice, value in voices.items())
        for engine, run in loeo.items()
        if (voices := run["test"].get("per_voice_command_words"))
    )


def real_voices(real: dict) -> str:
    """The recorded words: command words recognised, other words called ``_unknown_`` or not."""
    commands, unknown = real["command_words"], real["unknown_words"]
    called = sorted(
        ((n, label) for label, n in unknown["called"].items() if label != kws.UNKNOWN), reverse=True
    )
    return (
        f"- command words: {commands['correct']} of {commands['clips']} recognised\n"
        f"- other words: {unknown['called_unknown']} of {unknown['clips']} called `_unknown_`; "
        + ", ".join(f"`{label}` {n}" for n, label in called)
    )


def class_table(tests: dict) -> str:
    """Per-class accuracy of the shipped model, one column per engine's test split."""
    engines = list(tests)
    lines = [
        "| class | " + " | ".join(engines) + " |",
        "|---|" + "---|" * len(engines),
        "| **ten command words** | "
        + " | ".join(percent(tests[e]["command_word_accuracy"]) for e in engines)
        + " |",
        "| **all 12 classes** | "
        + " | ".join(percent(tests[e]["accuracy"]) for e in engines)
        + " |",
    ]
    for label in kws.LABELS:
        row = " | ".join(percent(tests[e]["per_class"][label]) for e in engines)
        lines.append(f"| `{label}` | {row} |")
    return "\n".join(lines)


def history_table(history: list[dict]) -> str:
    """The shipped run's epochs."""
    lines = [
        "| epoch | lr (epoch start) | train loss | train acc | seconds |",
        "|---|---|---|---|---|",
    ]
    for row in history:
        lines.append(
            f"| {row['epoch']} | {row['learning_rate']:.2e} | {row['train_loss']:.3f} | "
            f"{row['train_accuracy']:.3f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def errors(tests: dict) -> str:
    """The most frequent confusions per engine's test split."""
    return "\n".join(
        f"- {engine}: " + ", ".join(f"`{k}` {v}" for k, v in list(test["top_errors"].items())[:6])
        for engine, test in tests.items()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "training", type=Path, help="training.json (and loeo.json from the same folder)"
    )
    args = parser.parse_args(argv)
    training = json.loads(args.training.read_text())
    loeo = args.training.with_name("loeo.json")
    if loeo.exists():
        print(loeo_table(json.loads(loeo.read_text())), end="\n\n")
        print(loeo_voices(json.loads(loeo.read_text())), end="\n\n")
    print(class_table(training["test"]), end="\n\n")
    print(errors(training["test"]), end="\n\n")
    print(history_table(training["history"]))
    real = args.training.with_name("real_voices.json")
    if real.exists():
        print("", real_voices(json.loads(real.read_text())), sep="\n")


if __name__ == "__main__":
    main()
