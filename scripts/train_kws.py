#!/usr/bin/env python3
"""Reproduce the bundled keyword-spotting model (``ast_jax/models/kws12``) from nothing.

1. Synthesise the data of four speech engines (Debian packages, installed with apt-get when
   missing and running as root): espeak-ng (`make_kws_dataset.py`, 2,200 training clips per class:
   1,400 by espeak-ng's own voice variants, 800 by random ones; a test split of 20 held-out voice
   variants), flite (`kws_engines.py`, its 5 voices, 800 training clips per class), festival (its
   3 English voices and 9 voices of other languages saying respelled words, 1,400 per class) and
   SVOX Pico (2 English voices, 3 of other languages, 800 per class); 150 test clips per class
   each, English voices only. Half the training clips carry recording conditions
   (`kws_conditions.py`: speed perturbation, simulated rooms, telephone and microphone band
   limits, levels, babble, hum and coloured noise); test clips only noise. Skipped where ``DATA``
   already holds them.
2. Write the manifests (`kws_loeo.py`): all training clips, each engine's test split and the
   leave-one-engine-out (LOEO) training sets (shared speakers dropped with their engine).
3. Compute and cache the log-mel features (timed apart from training).
4. ``--loeo``: for each engine, train on the others with the reduced LOEO recipe (`recipe`,
   ``LOEO_CLIP_UPDATES``) and evaluate on the left-out engine's test split
   (`kws_evaluate.py`); results in ``OUT/loeo.json``, copied next to the bundled model as
   ``loeo.json`` (its card's leave-one-engine-out table).
5. Otherwise: train the small AST of ``kws12_config.json`` from scratch on all training clips
   (``FINAL_EPOCHS``; the shipped model is the weight average of the last epochs, fixed in
   advance: nothing is picked by a test split), evaluate it once on each engine's test split,
   copy it into the package with ``training.json`` (the numbers the model card shows;
   `kws_card_tables.py` renders them), write example clips of held-out voices to
   ``examples/audio`` and classify the recorded words Debian ships (`kws_real_voices.py`:
   ``real_voices.json`` in the package).

    .venv/bin/python scripts/train_kws.py --loeo   # the LOEO table (about 50 min on 2 cores)
    .venv/bin/python scripts/train_kws.py          # the shipped model (about 40 min of training)

Defaults: data in ``data/kws``, runs in ``runs/kws12``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import default_extractor
from ast_jax.training.datasets import load_dataset
from ast_jax.training.features import compute_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kws_engines
import kws_loeo
from make_kws_dataset import CONDITIONS_PROBABILITY

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_MODEL = ROOT / "ast_jax" / "models" / "kws12"
CONFIG = ROOT / "scripts" / "kws12_config.json"
TRAIN_PER_CLASS = 800  # espeak-ng clips per class of the training split
EXTRA_TRAIN_PER_CLASS = 600  # more espeak-ng clips per class, drawn after the test split
RANDOM_PER_CLASS = 800  # and espeak-ng clips per class by random voice variants (2,200 in all)
# Training clips per class of the other engines: festival's 12 voices get more than the 5 of
# flite and of Pico.
ENGINE_TRAIN_PER_CLASS = {"flite": 800, "festival": 1400, "pico": 800}
ENGINE_TEST_PER_CLASS = 150  # and test clips per class (as espeak-ng's test split)
FINAL_EPOCHS = 10  # 10 epochs of 62,400 clips: 624,000 clip updates
LOEO_CLIP_UPDATES = 192_000  # the reduced LOEO recipe: epochs = this / training clips
LAST_LR_FACTOR = 0.056  # the last epoch's learning rate over the peak
# The held-out clip (the first test clip of its word, chosen in advance) of each example file.
EXAMPLES = {"yes": "espeak-ng", "stop": "espeak-ng", "left": "flite", "go": "festival"}


def recipe(epochs: int) -> list[str]:
    """``ast-jax finetune`` flags for ``epochs`` epochs from scratch.

    Adam (0.95, 0.999) with L2 5e-7 (the original AST optimiser); a linear warm-up to 1e-3 over
    300 updates, then a per-epoch decay from epoch 4 (from the middle epoch in runs shorter than
    6 epochs) down to `LAST_LR_FACTOR` in the last epoch; SpecAugment (8 of 64 mel bins, 12
    frames), the Speech Commands noise and time shift, a random frequency warp of up to +-15%
    (vocal-tract-length perturbation: the voices' formants span about that much); the weights of
    the last quarter of the epochs averaged (at least the last 2).
    """
    start = min(3, epochs // 2)  # first decayed epoch, 0-based
    decay = LAST_LR_FACTOR ** (1 / max(1, epochs - start))
    first_averaged = epochs - max(2, epochs // 4) + 1
    return [
        "--epochs", str(epochs), "--batch-size", "64", "--lr", "1e-3",
        "--warmup-steps", "300", "--warmup-every", "1",
        "--lr-decay-start", str(start), "--lr-decay-every", "1", "--lr-decay", f"{decay:.3f}",
        "--freqm", "8", "--timem", "12", "--noise", "0.1", "--time-shift", "10",
        "--freq-warp", "0.15", "--weight-average", str(first_averaged), str(epochs),
        "--seed", "0", "--stats", "dataset", "--quiet",
    ]  # fmt: skip


def run(*args: str | Path) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(arg) for arg in args], check=True, cwd=ROOT)


def dataset_ready(data: Path) -> bool:
    """Whether ``data`` holds the espeak-ng dataset this recipe needs (its ``stats.json``: the
    clip counts and recording conditions)."""
    try:
        stats = json.loads((data / "stats.json").read_text())
    except FileNotFoundError:
        return False
    train = stats["train"]
    return (
        train["clips"]["yes"] == TRAIN_PER_CLASS + EXTRA_TRAIN_PER_CLASS + RANDOM_PER_CLASS
        and train.get("random_per_class") == RANDOM_PER_CLASS
        and stats.get("conditions_probability") == CONDITIONS_PROBABILITY
    )


def engine_ready(data: Path, engine: str) -> bool:
    """Whether ``data/engines`` holds the clips of ``engine`` this recipe needs, by its voices."""
    clips = {"train": ENGINE_TRAIN_PER_CLASS[engine] * 12, "test": ENGINE_TEST_PER_CLASS * 12}
    try:
        stats = json.loads((data / "engines" / engine / "stats.json").read_text())
    except FileNotFoundError:
        return False
    voices = [voice["name"] for voice in stats["voices"]]
    return (
        stats["clips"] == clips
        and voices == [v.name for v in kws_engines.VOICES[engine]]
        and stats.get("conditions_probability") == CONDITIONS_PROBABILITY
    )


def synthesise(data: Path) -> float:
    """Synthesise what ``data`` lacks and write the manifests; the seconds it took."""
    started = time.perf_counter()
    if not dataset_ready(data):
        run(sys.executable, ROOT / "scripts" / "make_kws_dataset.py", data,
            "--train-per-class", str(TRAIN_PER_CLASS),
            "--extra-train-per-class", str(EXTRA_TRAIN_PER_CLASS),
            "--random-per-class", str(RANDOM_PER_CLASS), "--conditions")  # fmt: skip
    for engine, per_class in ENGINE_TRAIN_PER_CLASS.items():
        if not engine_ready(data, engine):
            run(sys.executable, ROOT / "scripts" / "kws_engines.py", data / "engines",
                "--engines", engine, "--train-per-class", str(per_class),
                "--test-per-class", str(ENGINE_TEST_PER_CLASS))  # fmt: skip
    run(sys.executable, ROOT / "scripts" / "kws_loeo.py", data)
    return round(time.perf_counter() - started, 1)


def cache_features(data: Path, cache: Path) -> float:
    """Cache the features ``ast-jax finetune --in-memory`` reads (unnormalised, so their key does
    not depend on the normalisation statistics computed in training); the seconds it took."""
    started = time.perf_counter()
    sizing = default_extractor(ASTConfig.from_json_file(CONFIG))
    for manifest in ("train_all.csv", *(f"test_{e}.csv" for e in kws_loeo.ENGINES)):
        compute_features(load_dataset(data / manifest).paths, sizing, cache)
    return round(time.perf_counter() - started, 1)


def train(manifest: Path, epochs: int, out: Path, cache: Path) -> tuple[float, list[str]]:
    """Train from scratch on ``manifest`` into ``out``; wall seconds and the recipe's flags.
    The clips fit in RAM: the in-memory path computes their features once (no mixup here)."""
    flags = recipe(epochs)
    started = time.perf_counter()
    run(sys.executable, "-m", "ast_jax.cli", "finetune", "--in-memory", "--cache", cache, CONFIG,
        manifest, *flags, "-o", out)  # fmt: skip
    return round(time.perf_counter() - started, 1), flags


def evaluate(model: Path, manifests: list[Path], output: Path) -> dict:
    """`kws_evaluate.py` of ``model`` on ``manifests`` (written to ``output``)."""
    run(sys.executable, ROOT / "scripts" / "kws_evaluate.py", model, *manifests, "-o", output)
    return json.loads(output.read_text())


def clips_in(manifest: Path) -> int:
    """Rows of a CSV manifest (its header left out)."""
    return len(manifest.read_text().splitlines()) - 1


def leave_one_engine_out(data: Path, out: Path, cache: Path, engines: list[str]) -> None:
    """The LOEO runs of ``engines`` (reduced recipe), merged into ``OUT/loeo.json``."""
    path = out / "loeo.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for engine in engines:
        manifest = data / f"loeo_{engine}.csv"
        clips = clips_in(manifest)
        epochs = max(3, round(LOEO_CLIP_UPDATES / clips))
        seconds, flags = train(manifest, epochs, out / f"loeo_{engine}", cache)
        test = data / f"test_{engine}.csv"
        scores = evaluate(out / f"loeo_{engine}" / "model_wa", [test], out / f"loeo_{engine}.json")
        history = json.loads((out / f"loeo_{engine}" / "history.json").read_text())
        results[engine] = {
            "train_clips": clips, "epochs": epochs, "train_seconds": seconds, "recipe": flags,
            "test": scores[str(test)], "history": history,
        }  # fmt: skip
        path.write_text(json.dumps(results, indent=2) + "\n")
        shutil.copy(path, PACKAGE_MODEL / "loeo.json")
        print(engine, json.dumps(scores[str(test)]["command_word_accuracy"]), flush=True)


def test_clip(data: Path, engine: str, word: str) -> Path:
    """The first test clip of ``word`` by ``engine``."""
    folder = data / "test" if engine == kws_loeo.ESPEAK else data / "engines" / engine / "test"
    return folder / word / "00000.wav"


def ship(stage: Path, data: Path, out: Path, training: dict) -> None:
    """Copy the weight-averaged model of ``stage`` into the package with ``training.json``, and
    the example clips into ``examples/audio``."""
    PACKAGE_MODEL.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "preprocessor_config.json", "ast_jax.safetensors"):
        shutil.copy(stage / "model_wa" / name, PACKAGE_MODEL / name)
    (PACKAGE_MODEL / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    for word, engine in EXAMPLES.items():
        shutil.copy(test_clip(data, engine, word), ROOT / "examples" / "audio" / f"kws_{word}.wav")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "kws")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "kws12")
    parser.add_argument(
        "--loeo",
        nargs="*",
        choices=kws_loeo.ENGINES,
        help="leave-one-engine-out runs of these engines (all when none is named)",
    )
    args = parser.parse_args(argv)
    cache = ROOT / "data" / "cache"
    args.out.mkdir(parents=True, exist_ok=True)

    synthesis_seconds = synthesise(args.data)
    feature_seconds = cache_features(args.data, cache)
    if args.loeo is not None:
        leave_one_engine_out(args.data, args.out, cache, args.loeo or list(kws_loeo.ENGINES))
        return

    stage = args.out / "train"
    train_seconds, flags = train(args.data / "train_all.csv", FINAL_EPOCHS, stage, cache)
    tests = [args.data / f"test_{engine}.csv" for engine in kws_loeo.ENGINES]
    test = evaluate(stage / "model_wa", tests, args.out / "test_wa.json")
    training = {
        "train_seconds": train_seconds,
        "synthesis_seconds": synthesis_seconds,
        "feature_seconds": feature_seconds,
        "train_clips": clips_in(args.data / "train_all.csv"),
        "test": {
            engine: test[str(path)] for engine, path in zip(kws_loeo.ENGINES, tests, strict=True)
        },
        "history": json.loads((stage / "history.json").read_text()),
        "dataset": {
            "espeak-ng": json.loads((args.data / "stats.json").read_text()),
            **{
                engine: json.loads((args.data / "engines" / engine / "stats.json").read_text())
                for engine in kws_engines.ENGINES
            },
            "manifests": json.loads((args.data / "manifests.json").read_text()),
        },
        "recipe": flags,
    }
    ship(stage, args.data, args.out, training)
    run(sys.executable, ROOT / "scripts" / "kws_real_voices.py", args.data / "real",
        "--model", PACKAGE_MODEL)  # fmt: skip
    shutil.copy(args.data / "real" / "real.json", PACKAGE_MODEL / "real_voices.json")
    print(json.dumps({"train_seconds": train_seconds, "test": training["test"]}, indent=2))


if __name__ == "__main__":
    main()
