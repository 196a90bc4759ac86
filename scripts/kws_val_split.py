#!/usr/bin/env python3
"""Carve a validation split of training *voices* out of ``data/kws/train``.

The synthesis plan of `make_kws_dataset.py` is deterministic, so replaying its random draws
(without synthesising anything) recovers the voice of every training clip. ``--variants`` of the
81 training voice variants (drawn with ``--seed``) go to the validation split in all 8 accents; the
rest stay for training (with their clips of ``make_kws_dataset --extra-train-per-class``, if any,
and all clips of its random voice variants, ``--random-per-class``).
``_silence_`` clips have no voice: every 8th goes to validation. Writes ``DATA/fit.csv`` and
``DATA/val.csv`` (manifests with paths relative to ``DATA``) and ``DATA/val_split.json``.

    .venv/bin/python scripts/kws_val_split.py data/kws
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_kws_dataset as kws


def voices_of_train_clips(data: Path) -> tuple[dict[tuple[str, int], str], list[str]]:
    """``{(label, index): variant}`` for the spoken training clips of espeak-ng's own variants (the
    random variants' clips come after them), and the training variants."""
    stats = json.loads((data / "stats.json").read_text())
    variants = sorted({*stats["train"]["variants"], *stats["test"]["variants"]})
    rng = np.random.default_rng(stats["seed"])
    rng.shuffle(variants)  # as make_kws_dataset.main, which draws from the same generator
    held_out = len(stats["test"]["variants"])
    if sorted(variants[:held_out]) != stats["test"]["variants"]:
        raise SystemExit("replayed variant split differs from stats.json")
    train_variants = sorted(variants[held_out:])
    extra = stats["train"].get("extra_per_class", 0)
    named = stats["train"].get("named_clips", stats["train"]["clips"])
    per_class = named[kws.CORE_WORDS[0]] - extra
    voices = [f"{accent}+{variant}" for accent in kws.ACCENTS for variant in train_variants]
    plan = kws.plan_split(rng, voices, per_class)
    if extra:  # drawn after the test split's plan (make_kws_dataset --extra-train-per-class)
        test_voices = [f"{a}+{v}" for a in kws.ACCENTS for v in stats["test"]["variants"]]
        kws.plan_split(rng, test_voices, stats["test"]["clips"][kws.CORE_WORDS[0]])
        plan += kws.plan_split(rng, voices, extra)
    counts: dict[str, int] = {}
    owner = {}
    for label, voice, *_ in plan:
        index = counts.get(label, 0)
        counts[label] = index + 1
        owner[label, index] = voice.split("+", 1)[1]
    if any(counts[label] != n for label, n in named.items() if label in counts):
        raise SystemExit("replayed plan differs from stats.json counts")
    return owner, train_variants


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset root (e.g. data/kws)")
    parser.add_argument("--variants", type=int, default=10, help="validation voice variants")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    owner, train_variants = voices_of_train_clips(args.data)
    rng = np.random.default_rng(args.seed)
    val_variants = sorted(rng.choice(train_variants, args.variants, replace=False).tolist())
    rows: dict[str, list[tuple[str, str]]] = {"fit": [], "val": []}
    for folder in sorted((args.data / "train").iterdir()):
        for index, path in enumerate(sorted(folder.glob("*.wav"))):
            if folder.name == kws.SILENCE:
                split = "val" if index % 8 == 0 else "fit"
            else:  # clips past the replayed plan are random variants' (never validation voices)
                split = "val" if owner.get((folder.name, index)) in val_variants else "fit"
            rows[split].append((path.relative_to(args.data).as_posix(), folder.name))
    for split, split_rows in rows.items():
        with open(args.data / f"{split}.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "label"])
            writer.writerows(split_rows)
    summary = {
        "variants": val_variants,
        "voices": len(val_variants) * len(kws.ACCENTS),
        "clips": len(rows["val"]),
        "train_clips_left": len(rows["fit"]),
        "seed": args.seed,
    }
    (args.data / "val_split.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
