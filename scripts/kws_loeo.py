#!/usr/bin/env python3
"""Manifests of the multi-engine keyword data: all training clips, each engine's test split, and
the leave-one-engine-out (LOEO) training sets.

Engines: espeak-ng (``DATA/{train,test}``, `make_kws_dataset.py`) and the engines of
`kws_engines.py` (``DATA/engines/<engine>``). Leaving an engine out drops its clips from training
and also every clip of another engine spoken by one of its speakers (`kws_engines.VOICES`: flite's
and festival's ``kal`` voices share a diphone database, their ``slt`` voices a speaker), so that
the left-out engine's test split has neither its engine nor its speakers in training. espeak-ng's
test split holds its held-out voice variants (`make_kws_dataset.py`).

Writes into ``DATA`` (paths relative to it): ``train_all.csv``, ``test_<engine>.csv`` and
``loeo_<engine>.csv`` (training without that engine), and ``manifests.json`` (clip counts).

    .venv/bin/python scripts/kws_loeo.py data/kws
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kws_engines

ESPEAK = "espeak-ng"
ENGINES = (ESPEAK, *kws_engines.ENGINES)


def espeak_rows(data: Path, split: str) -> list[dict[str, str]]:
    """Rows (path, label, engine, speaker) of espeak-ng's ``split`` folder."""
    return [
        {"path": path.relative_to(data).as_posix(), "label": path.parent.name,
         "engine": ESPEAK, "speaker": ""}
        for path in sorted((data / split).glob("*/*.wav"))
    ]  # fmt: skip


def engine_rows(data: Path, engine: str, split: str) -> list[dict[str, str]]:
    """Rows of ``engine``'s ``split`` (its ``clips.csv``)."""
    with open(data / "engines" / engine / "clips.csv", newline="", encoding="utf-8") as file:
        return [row for row in csv.DictReader(file) if row["split"] == split]


def speakers(engine: str) -> set[str]:
    """The speakers of ``engine``'s voices (none for espeak-ng: its voices are its own)."""
    return {voice.speaker for voice in kws_engines.VOICES.get(engine, ())}


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    """A ``path,label`` CSV manifest (`ast_jax.training.datasets`)."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label"])
        writer.writerows((row["path"], row["label"]) for row in rows)


def build(data: Path, engines: tuple[str, ...] = ENGINES) -> dict:
    """Write the manifests of ``data``; returns the clip counts."""
    rows = {
        (engine, split): espeak_rows(data, split) if engine == ESPEAK
        else engine_rows(data, engine, split)
        for engine in engines for split in ("train", "test")
    }  # fmt: skip
    train = [row for engine in engines for row in rows[engine, "train"]]
    write_manifest(data / "train_all.csv", train)
    counts: dict = {"train_all": len(train)}
    for engine in engines:
        write_manifest(data / f"test_{engine}.csv", rows[engine, "test"])
        left_out = speakers(engine)
        kept = [
            row for row in train
            if row["engine"] != engine and row["speaker"] not in left_out
        ]  # fmt: skip
        write_manifest(data / f"loeo_{engine}.csv", kept)
        counts[engine] = {
            "test": len(rows[engine, "test"]),
            "loeo_train": len(kept),
            "dropped_shared_speakers": sorted(left_out),
        }
    (data / "manifests.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset root (e.g. data/kws)")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.data), indent=2))


if __name__ == "__main__":
    main()
