"""How commands print results (a table for people, JSON and CSV for programs) and name the files
they write per input.

Shape legend: K windows, C classes.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ast_jax.inference.results import Classification

__all__ = ["FORMATS", "output_names", "print_results", "summary"]

FORMATS = ("table", "json", "csv")


def summary(result: Classification, k: int, per_window: bool) -> dict[str, Any]:
    """The JSON-ready view of one result: clip top-k, and each window's if asked."""

    def ranked(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
        return [{"label": label, "score": round(score, 6)} for label, score in pairs]

    view: dict[str, Any] = {
        "file": result.source,
        "duration": round(result.duration, 3),
        "windows": len(result.window_times),
        "top": ranked(result.top_k(k)),
    }
    if per_window:
        view["per_window"] = [
            {"start": round(start, 3), "end": round(end, 3), "top": ranked(top)}
            for (start, end), top in zip(result.window_times, result.window_top_k(k), strict=True)
        ]
    return view


def print_results(results: list[dict[str, Any]], output_format: str) -> None:
    """Prints `summary` views to stdout as a ``table``, ``json`` or ``csv``."""
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
            count = result["windows"]
            windows = f"{count} window{'' if count == 1 else 's'}"
            print(f"{result['file']}  ({result['duration']:.2f} s, {windows})")
            print(f"  clip             {_ranked_text(result['top'])}")
            for window in result.get("per_window", []):
                span = f"{window['start']:7.2f}-{window['end']:7.2f} s"
                print(f"  {span}  {_ranked_text(window['top'])}")


def _ranked_text(top: list[dict[str, Any]]) -> str:
    return ", ".join(f"{entry['label']} {entry['score']:.3f}" for entry in top)


def output_names(files: Sequence[Path], suffix: str) -> dict[str, str]:
    """An output file name per input file (keyed by ``str(path)``) that no other input shares:
    ``<stem><suffix>``, or, for files whose stems collide, their path below the files' common
    folder joined with ``__`` (``a__x.png``)."""
    stems = Counter(Path(path).stem for path in files)
    resolved = [Path(path).resolve() for path in files]
    common = Path(os.path.commonpath([path.parent for path in resolved])) if files else Path()
    names = {}
    for path, absolute in zip(files, resolved, strict=True):
        if stems[Path(path).stem] == 1:
            names[str(path)] = f"{Path(path).stem}{suffix}"
        else:
            names[str(path)] = (
                "__".join(absolute.relative_to(common).with_suffix("").parts) + suffix
            )
    return names
