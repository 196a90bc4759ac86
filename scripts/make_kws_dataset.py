#!/usr/bin/env python3
"""Synthesise a Speech-Commands-style keyword-spotting dataset with espeak-ng.

Twelve classes, as the Speech Commands V2-12 task: the ten core words (yes, no, up, down, left,
right, on, off, stop, go), ``_unknown_`` (other Speech Commands words) and ``_silence_``
(background noise only). Every clip is 1 s of 16 kHz mono 16-bit PCM: one word spoken by an
espeak-ng voice (an English accent + a voice variant, e.g. ``en-us+m3``) at a random speed and
pitch, at a random position and level, mixed with white, pink or brown noise at a random
signal-to-noise ratio.

Voices are split by variant: the variants of the test split are never heard in training (in any
accent), so the test accuracy measures generalisation to unseen voices. ``--random-per-class``
adds training clips spoken by *random* voice variants (`random_variant`: formants, pitch and voice
quality drawn from the ranges espeak-ng's own variants span), written to ``OUT/random_variants``
and read by espeak-ng from a private copy of its data folder.

Output: ``OUT/{train,test}/<label>/<n>.wav`` (the layout ``ast-jax finetune`` reads) and
``OUT/stats.json`` (counts, voices, seed). Deterministic for a given seed and espeak-ng version.
``--extra-train-per-class`` and then ``--random-per-class`` add training clips (numbered after
the first ``--train-per-class``) drawn after the test split, so that neither the test split nor the
first training clips change.

    python scripts/make_kws_dataset.py data/kws
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kws_conditions

CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "backward",
    "forward", "follow", "learn", "visual",
)  # fmt: skip
SILENCE, UNKNOWN = "_silence_", "_unknown_"
LABELS = (*CORE_WORDS, SILENCE, UNKNOWN)
# espeak-ng's English accents (its own voices; the mbrola ones need extra packages).
ACCENTS = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
    "en-us-nyc",
)  # fmt: skip
SAMPLING_RATE = 16000
CLIP_SAMPLES = SAMPLING_RATE  # 1 s
SPEED_WPM = (120, 220)  # espeak-ng -s: words per minute (default 175)
PITCH = (15, 85)  # espeak-ng -p: 0..99 (default 50)
SNR_DB = (5.0, 35.0)  # speech over background noise
SPEECH_PEAK = (0.2, 0.9)
# With recording conditions (``--conditions``): the share of training clips recorded in them (the
# others stay plain, as every test clip is), with wider levels and signal-to-noise ratios.
CONDITIONS_PROBABILITY = 0.5
CONDITIONS_SNR_DB = (0.0, 35.0)
CONDITIONS_SPEECH_PEAK = (0.03, 0.95)
SILENCE_RMS_DB = (-70.0, -20.0)  # background level of _silence_ clips, dB full scale
TRIM_THRESHOLD = 0.02  # of the peak: where espeak-ng's leading/trailing silence ends
RANDOM_PREFIX = "random"  # random variants are named random000, random001, ...
MAX_RANDOM_VARIANTS = 150  # espeak-ng 1.51 resolves at most 349 voices and has 131 languages


def ensure_espeak() -> str:
    """Path of espeak-ng, installing the Debian package when missing and running as root."""
    path = shutil.which("espeak-ng")
    if path is None and os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("espeak-ng not found; installing it with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "espeak-ng"], check=True)
        path = shutil.which("espeak-ng")
    if path is None:
        raise SystemExit("espeak-ng is required: sudo apt-get install espeak-ng")
    return path


def list_variants(espeak: str) -> list[str]:
    """Voice variant names (``espeak-ng --voices=variant``, file column ``!v/<name>``)."""
    text = subprocess.run(
        [espeak, "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    # A file name may hold a space ("!v/Mr serious"); columns are separated by two or more.
    names = re.findall(r"!v/(\S+(?: \S+)*)", text)
    return sorted(set(names))


def random_variant(rng: np.random.Generator, name: str) -> str:
    """An espeak-ng voice variant file with random formants, pitch and voice quality.

    Formant frequencies, heights and widths are percentages of the base voice's. The frequencies
    share one vocal-tract scale (85-135%: a longer or shorter tract shifts all formants together),
    each then jittered by +-15%, which spans espeak-ng's own variants (e.g. ``Alicia``'s F1-F3 at
    130-150%); the optional voice-quality lines (echo, flutter, roughness, breathiness, tone,
    klatt synthesis) each appear with the rough frequency they have among those variants.
    """
    lines = ["language variant", f"name {name}"]
    base = int(rng.integers(50, 211))
    lines.append(f"pitch {base} {base + int(rng.integers(40, 121))}")
    scale = rng.uniform(0.85, 1.35)
    for formant in range(9):
        frequency = round(100 * scale * rng.uniform(0.85, 1.15))
        height, width = int(rng.integers(50, 131)), int(rng.integers(70, 161))
        lines.append(f"formant {formant} {frequency} {height} {width}")
    optional = {
        "echo": (0.3, lambda: f"{rng.integers(10, 151)} {rng.integers(5, 41)}"),
        "flutter": (0.3, lambda: f"{rng.integers(0, 21)}"),
        "roughness": (0.4, lambda: f"{rng.integers(0, 6)}"),
        "voicing": (0.4, lambda: f"{rng.integers(40, 151)}"),
        "consonants": (0.4, lambda: f"{rng.integers(60, 195)} {rng.integers(20, 256)}"),
        "breath": (0.1, lambda: " ".join(str(rng.integers(0, 61)) for _ in range(8))),
        "tone": (
            0.3,
            lambda: (
                f"{rng.integers(300, 651)} {rng.integers(100, 256)} "
                f"{rng.integers(1000, 1501)} {rng.integers(70, 256)} "
                f"{rng.integers(2000, 4701)} {rng.integers(22, 256)}"
            ),
        ),
        "klatt": (0.15, lambda: f"{rng.integers(1, 7)}"),
    }
    for key, (probability, value) in optional.items():
        if rng.random() < probability:
            lines.append(f"{key} {value()}")
    return "\n".join(lines) + "\n"


def private_espeak_data(espeak: str, folder: Path) -> Path:
    """A copy of espeak-ng's data folder in ``folder`` (symbolic links) whose voice-variant folder
    starts empty, for random variants; pass ``folder`` to espeak-ng's ``--path``.

    espeak-ng lists every voice when it resolves one and stops at 349, which its languages and
    own 101 variants nearly fill; hence no links to its own variants here (`MAX_RANDOM_VARIANTS`).
    """
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True)
    source = Path(re.search(r"Data at: (.+)$", version.stdout.strip()).group(1))
    data = folder / "espeak-ng-data"
    (data / "voices" / "!v").mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "voices":
            (data / item.name).symlink_to(item)
    for item in (source / "voices").iterdir():
        if item.name != "!v":
            (data / "voices" / item.name).symlink_to(item)
    return folder


def variant_file(data: Path, name: str) -> Path:
    """Where espeak-ng run with ``--path=data`` reads the voice variant ``name``."""
    return data / "espeak-ng-data" / "voices" / "!v" / name


def draw_random_variants(
    espeak: str, rng: np.random.Generator, count: int, data: Path
) -> dict[str, str]:
    """``count`` random variants (name -> file text) written into ``data``; a draw is redrawn when
    its probe word comes out silent or outside 0.15-0.95 s (a broken voice, not a hard one)."""
    variants: dict[str, str] = {}
    while len(variants) < count:
        name = f"{RANDOM_PREFIX}{len(variants):03d}"
        text = random_variant(rng, name)
        variant_file(data, name).write_text(text)
        probe = synthesise(espeak, f"en+{name}", "seven", 175, 50, data)
        if np.abs(probe).max() > 0.01 and 0.15 <= probe.size / SAMPLING_RATE <= 0.95:
            variants[name] = text
    return variants


def synthesise(
    espeak: str, voice: str, word: str, speed: int, pitch: int, data: Path | None = None
) -> np.ndarray:
    """One word at 16 kHz, float32, leading and trailing silence trimmed; ``data``: espeak-ng's
    ``--path`` (`private_espeak_data`) for random variants."""
    path = [f"--path={data}"] if data else []
    with tempfile.NamedTemporaryFile(suffix=".wav") as file:
        subprocess.run(
            [espeak, *path, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", file.name, word],
            check=True,
            capture_output=True,
        )
        audio, rate = soundfile.read(file.name, dtype="float32")
    audio = soxr.resample(audio, rate, SAMPLING_RATE)
    loud = np.flatnonzero(np.abs(audio) > TRIM_THRESHOLD * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def coloured_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise."""
    exponent = rng.choice([0.0, 1.0, 2.0])
    spectrum = np.fft.rfft(rng.standard_normal(size))
    frequencies = np.maximum(np.fft.rfftfreq(size), 1.0 / size)
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=size)
    return noise / np.sqrt(np.mean(noise**2))


def place_word(
    rng: np.random.Generator, speech: np.ndarray, conditions: np.random.Generator | None = None
) -> np.ndarray:
    """The word at a random position and peak level in a 1-s clip, plus noise at a random SNR.

    ``conditions``: with probability `CONDITIONS_PROBABILITY` (its first draw), record the word in
    conditions drawn from this generator (`kws_conditions.record`; wider levels and SNRs,
    `kws_conditions.noise` backgrounds); otherwise the clip is the plain one ``rng`` makes."""
    peak_range, snr_range, make_noise, source = SPEECH_PEAK, SNR_DB, coloured_noise, rng
    if conditions is not None and conditions.random() < CONDITIONS_PROBABILITY:
        speech = kws_conditions.record(conditions, speech)
        peak_range, snr_range = CONDITIONS_SPEECH_PEAK, CONDITIONS_SNR_DB
        make_noise, source = kws_conditions.noise, conditions
    if speech.size > CLIP_SAMPLES:  # rare: slow voices; keep the middle second
        start = (speech.size - CLIP_SAMPLES) // 2
        speech = speech[start : start + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    offset = rng.integers(0, CLIP_SAMPLES - speech.size + 1)
    clip[offset : offset + speech.size] = speech * (rng.uniform(*peak_range) / np.abs(speech).max())
    speech_rms = np.sqrt(np.mean(clip[offset : offset + speech.size] ** 2))
    noise_rms = speech_rms * 10 ** (-rng.uniform(*snr_range) / 20)
    return clip + noise_rms * make_noise(source, CLIP_SAMPLES)


def background(rng: np.random.Generator, conditions: bool = False) -> np.ndarray:
    """A ``_silence_`` clip: noise only, at a random level (``conditions``: any
    `kws_conditions.noise` background, else white, pink or brown noise)."""
    make_noise = kws_conditions.noise if conditions else coloured_noise
    return 10 ** (rng.uniform(*SILENCE_RMS_DB) / 20) * make_noise(rng, CLIP_SAMPLES)


def plan_split(
    rng: np.random.Generator, voices: list[str], per_class: int
) -> list[tuple[str, str, str, int, int]]:
    """``(label, voice, word, speed, pitch)`` for every spoken clip of one split."""
    plan = []
    for label in (*CORE_WORDS, UNKNOWN):
        for _ in range(per_class):
            word = rng.choice(UNKNOWN_WORDS) if label == UNKNOWN else label
            voice = voices[rng.integers(len(voices))]
            plan.append(
                (label, voice, str(word), int(rng.integers(*SPEED_WPM)), int(rng.integers(*PITCH)))
            )
    return plan


def write_split(
    espeak: str,
    out: Path,
    plan: list,
    silences: int,
    seed: int,
    workers: int,
    start: dict[str, int] | None = None,
    data: Path | None = None,
    conditions: bool = False,
) -> dict[str, int]:
    """Synthesise and write one split, numbering each label's clips from ``start`` (default 0);
    returns the clips per label written so far (``start`` included). ``data``: as `synthesise`;
    ``conditions``: a second generator per clip for `place_word`'s recording conditions (half the
    clips), so that the plan and the first generator's draws stay those of the plain clips."""
    counts = dict.fromkeys(LABELS, 0) if start is None else dict(start)
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)

    def render(index: int, item: tuple) -> tuple[str, np.ndarray]:
        label, voice, word, speed, pitch = item
        rng = np.random.default_rng([seed, index])
        extra = np.random.default_rng([seed, index, 1]) if conditions else None
        return label, place_word(rng, synthesise(espeak, voice, word, speed, pitch, data), extra)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        clips = list(pool.map(render, range(len(plan)), plan))
    rng = np.random.default_rng([seed, len(plan)])
    clips += [(SILENCE, background(rng, conditions)) for _ in range(silences)]
    for label, clip in clips:
        path = out / label / f"{counts[label]:05d}.wav"
        soundfile.write(path, np.clip(clip, -1.0, 1.0), SAMPLING_RATE, subtype="PCM_16")
        counts[label] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output directory (e.g. data/kws)")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument(
        "--extra-train-per-class",
        type=int,
        default=0,
        help="more training clips per class, drawn after the test split (which stays the same)",
    )
    parser.add_argument(
        "--random-per-class",
        type=int,
        default=0,
        help="more training clips per class spoken by random voice variants (drawn last)",
    )
    parser.add_argument(
        "--random-variants",
        type=int,
        default=MAX_RANDOM_VARIANTS,
        help=f"how many random variants (at most {MAX_RANDOM_VARIANTS})",
    )
    parser.add_argument("--test-per-class", type=int, default=150)
    parser.add_argument(
        "--test-variants", type=float, default=0.2, help="share of held-out variants"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--conditions",
        action="store_true",
        help="record half the training clips in conditions (kws_conditions; the test split stays "
        "plain)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.random_variants <= MAX_RANDOM_VARIANTS:
        parser.error(f"--random-variants must be in 1..{MAX_RANDOM_VARIANTS}")

    espeak = ensure_espeak()
    rng = np.random.default_rng(args.seed)
    variants = list_variants(espeak)
    rng.shuffle(variants)
    held_out = max(1, round(args.test_variants * len(variants)))
    test_variants, train_variants = sorted(variants[:held_out]), sorted(variants[held_out:])
    stats = {
        "seed": args.seed, "labels": LABELS, "accents": ACCENTS, "conditions": args.conditions,
        "conditions_probability": CONDITIONS_PROBABILITY if args.conditions else 0.0,
    }  # fmt: skip
    for split, split_variants, per_class in (
        ("train", train_variants, args.train_per_class),
        ("test", test_variants, args.test_per_class),
    ):
        voices = [f"{accent}+{variant}" for accent in ACCENTS for variant in split_variants]
        plan = plan_split(rng, voices, per_class)
        seed = args.seed * 2 + (split == "test")
        conditions = args.conditions and split == "train"
        counts = write_split(
            espeak, args.out / split, plan, per_class, seed, args.workers, conditions=conditions
        )
        stats[split] = {"variants": split_variants, "voices": len(voices), "clips": counts}
        print(f"{split}: {sum(counts.values())} clips, {len(voices)} voices", file=sys.stderr)
    if args.extra_train_per_class:
        # Drawn last, so the first --train-per-class clips and the test split do not depend on it.
        voices = [f"{accent}+{variant}" for accent in ACCENTS for variant in train_variants]
        plan = plan_split(rng, voices, args.extra_train_per_class)
        counts = write_split(
            espeak, args.out / "train", plan, args.extra_train_per_class, args.seed * 2 + 2,
            args.workers, start=stats["train"]["clips"], conditions=args.conditions,
        )  # fmt: skip
        stats["train"] |= {"clips": counts, "extra_per_class": args.extra_train_per_class}
        print(f"train with extra clips: {sum(counts.values())} clips", file=sys.stderr)
    if args.random_per_class:
        stats["train"]["named_clips"] = stats["train"]["clips"]
        with tempfile.TemporaryDirectory() as folder:
            data = private_espeak_data(espeak, Path(folder))
            variants = draw_random_variants(espeak, rng, args.random_variants, data)
            voices = [f"{accent}+{name}" for accent in ACCENTS for name in variants]
            plan = plan_split(rng, voices, args.random_per_class)
            counts = write_split(
                espeak, args.out / "train", plan, args.random_per_class, args.seed * 2 + 3,
                args.workers, start=stats["train"]["clips"], data=data,
                conditions=args.conditions,
            )  # fmt: skip
        (args.out / "random_variants").mkdir(exist_ok=True)
        for name, text in variants.items():
            (args.out / "random_variants" / name).write_text(text)
        stats["train"] |= {
            "clips": counts,
            "random_per_class": args.random_per_class,
            "random_variants": len(variants),
        }
        print(f"train with random voices: {sum(counts.values())} clips", file=sys.stderr)
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")


if __name__ == "__main__":
    main()
