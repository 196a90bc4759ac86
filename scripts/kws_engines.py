#!/usr/bin/env python3
"""Keyword clips from speech engines other than espeak-ng: flite, festival and SVOX Pico (Debian
packages).

Every voice each engine ships in Debian bookworm (flite and festival in main; Pico in non-free:
Apache-2.0 code whose voice data comes without its sources), at a random speaking rate (duration
stretch), pitch (target F0 mean, where the voice takes one) and final punctuation (which changes
the intonation), as `make_kws_dataset.py`'s clips: one word at a random position and level in a
1-s 16-kHz clip plus noise; half the training clips are recorded in conditions
(`make_kws_dataset.place_word`, `kws_conditions`: speed perturbation, room reverberation, telephone
or microphone band limits, level changes, babble, hum and coloured noise).

festival's Italian, Finnish, Czech and Catalan voices and Pico's German, Spanish and Italian ones
are speakers (seven women, a boy and four men) that no English voice in Debian offers; they say
each word respelled in their language's spelling (`RESPELLINGS`), as a speaker of that language
with an accent would. They are training voices only: every test split holds English voices alone.

Voices share speakers across engines: flite's ``kal``/``kal16`` and festival's ``kal_diphone``
are the same diphone database (CMU's Kal), flite's ``slt`` (clustergen) and festival's
``cmu_us_slt_arctic_hts`` (HTS) are voices trained on the same speaker (CMU ARCTIC slt).
`VOICES` records each voice's speaker so that leave-one-engine-out splits can drop them.

Output: ``OUT/<engine>/{train,test}/<label>/<n>.wav``, ``OUT/<engine>/clips.csv`` (one row per
clip: path relative to ``OUT``'s parent, split, label, engine, voice, speaker, text, stretch, F0:
in Hz, or for Pico its pitch level in percent) and ``OUT/<engine>/stats.json``. Deterministic for
a given seed and engine version.

    python scripts/kws_engines.py data/kws/engines
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_kws_dataset as kws

# Debian packages per engine (bookworm, main): the engine and the voices `VOICES` names.
ENGINE_PACKAGES = {
    "flite": ("flite",),
    "festival": (
        "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts",
        "festvox-italp16k", "festvox-itapc16k", "festvox-suopuhe-lj", "festvox-suopuhe-mv",
        "festvox-czech-dita", "festvox-czech-krb", "festvox-czech-machac", "festvox-czech-ph",
        "festvox-ca-ona-hts",
    ),
    "pico": ("libttspico-utils",),
}  # fmt: skip
ENGINE_PROGRAMS = {"flite": "flite", "festival": "festival", "pico": "pico2wave"}
NON_FREE = ("pico",)  # engines whose packages are in Debian's non-free component
ENGINES = tuple(ENGINE_PACKAGES)


STRETCH = (0.75, 1.4)  # duration stretch: > 1 is slower
PUNCTUATION = ("", ".", "!", "?", ",")
NO_QUESTION = ("", ".", "!", ",")  # festival 2.5's Italian intonation crashes on some questions


@dataclasses.dataclass(frozen=True)
class Voice:
    """One engine voice: its name for the engine, its speaker, its F0 range for
    ``--setf int_f0_target_mean`` / ``int_lr_params`` (Hz) or Pico's ``<pitch level>`` (percent
    of the voice's own pitch; ``None``: the voice's own intonation), the
    language whose spelling it reads (`RESPELLINGS` for any but English) and the final punctuation
    marks it may be given."""

    name: str
    speaker: str
    f0: tuple[int, int] | None
    language: str = "english"
    punctuation: tuple[str, ...] = PUNCTUATION


# flite 2.2's built-in voices (``flite -lv``; awb_time is a timing-only test voice, left out).
# festival 2.5: every voice of its Debian packages in a Latin alphabet (the Russian and Indian ones
# read other scripts). Male F0 80-170 Hz, female 140-260 Hz. Pico 1.0: five of its six voices, all
# women (French is left out: ASCII respellings read poorly in French spelling); a pitch level of
# 70-140% spans about 140-280 Hz.
VOICES = {
    "flite": (
        Voice("kal", "kal", (80, 170)),  # 8 kHz diphone
        Voice("kal16", "kal", (80, 170)),  # 16 kHz diphone
        Voice("awb", "awb", (80, 170)),  # clustergen, Scottish English
        Voice("rms", "rms", (80, 170)),  # clustergen
        Voice("slt", "slt", (140, 260)),  # clustergen
    ),
    "festival": (
        Voice("kal_diphone", "kal", (80, 170)),
        Voice("ked_diphone", "ked", (80, 170)),
        Voice("cmu_us_slt_arctic_hts", "slt", None),  # HTS: takes no target F0
        Voice("lp_diphone", "it_lp", None, "italian", NO_QUESTION),  # woman
        Voice("pc_diphone", "it_pc", None, "italian", NO_QUESTION),
        Voice("suo_fi_lj_diphone", "fi_lj", None, "finnish"),  # woman
        Voice("hy_fi_mv_diphone", "fi_mv", None, "finnish"),
        Voice("czech_dita", "cz_dita", None, "czech"),  # woman
        Voice("czech_krb", "cz_krb", None, "czech"),  # boy
        Voice("czech_machac", "cz_machac", None, "czech"),
        Voice("czech_ph", "cz_ph", None, "czech"),
        Voice("upc_ca_ona_hts", "ca_ona", None, "catalan"),  # woman, HTS
    ),
    "pico": (
        Voice("en-US", "pico_en_us", (70, 140)),
        Voice("en-GB", "pico_en_gb", (70, 140)),
        Voice("de-DE", "pico_de", (70, 140), "german"),
        Voice("es-ES", "pico_es", (70, 140), "spanish"),
        Voice("it-IT", "pico_it", (70, 140), "italian"),
    ),
}
# How a speaker of each language would write what it hears in the keywords and the ``_unknown_``
# words, in ASCII (festival reads 8-bit text in each language's own encoding), one row per word:
# Italian, Finnish, Czech, Catalan, German, Spanish.
_RESPELLED = """
yes ies jes jes ies jess yes
no nou nou nou nou nou nou
up ap ap ap ap app ap
down daun daun daun daun daun daun
left left left left left left left
right rait rait rajt rait reit rait
on on on on on onn on
off of of of of off of
stop stop stop stop stop stopp stop
go gou gou gou gou gou gou
bed bed bed bed bed bett bed
bird berd beerd berd berd berd berd
cat chet ket ket quet kett ket
dog dog dog dog dog dogg dog
happy eppi heppi hepi hepi heppi jepi
house aus haus haus haus haus jaus
marvin marvin maarvin marvin marvin marwin marvin
sheila scila siila sila xila schila chila
tree tri trii tri tri trie tri
wow uau vau vau uau wau guau
zero siro siirou zirou ziro siro siro
one uan van van uan wann uan
two tu tuu tu tu tuh tu
three tri srii sri tri srie tri
four for foor for for for for
five faiv faiv fajv faiv feiw faiv
six sics siks siks sics sicks siks
seven seven seven seven seven sewen seven
eight eit eit ejt eit eit eit
nine nain nain najn nain nein nain
backward becuord bekvord bekvord becuord beckword bakuord
forward foruord foorvord forvord foruord forword foruord
follow folou folou folou folou follou folou
learn lern leern lern lern lern lern
visual visciual visual vizual visual wischuel visual
"""
RESPELLINGS = {
    language: {row.split()[0]: row.split()[column] for row in _RESPELLED.strip().splitlines()}
    for column, language in enumerate(
        ("italian", "finnish", "czech", "catalan", "german", "spanish"), start=1
    )
}


@dataclasses.dataclass(frozen=True)
class Item:
    """One clip of the plan: what to say, and how."""

    label: str
    voice: Voice
    text: str
    stretch: float
    f0: int | None


def ensure_engine(engine: str) -> str:
    """Path of ``engine``'s program, installing its Debian packages (voices included) with apt-get
    when the program or a voice package is missing (`ensure_packages`)."""
    ensure_packages(ENGINE_PACKAGES[engine], non_free=engine in NON_FREE)
    path = shutil.which(ENGINE_PROGRAMS[engine])
    if path is None:
        raise SystemExit(f"{engine}: {ENGINE_PROGRAMS[engine]} is not on PATH")
    return path


def ensure_packages(packages: tuple[str, ...], non_free: bool = False) -> None:
    """Install the Debian ``packages`` that are missing with apt-get when running as root (from
    Debian's non-free component too if ``non_free``: `non_free_sources`); exit naming them if
    they stay missing."""
    missing = [package for package in packages if not package_installed(package)]
    if missing and os.name == "posix" and os.geteuid() == 0:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        with tempfile.TemporaryDirectory() as folder:
            sources = non_free_sources(Path(folder)) if non_free else []
            subprocess.run(["apt-get", "update", "-qq", *sources], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *sources, *missing], check=True)
        missing = [package for package in packages if not package_installed(package)]
    if missing:
        component = " (Debian non-free)" if non_free else ""
        raise SystemExit(f"required: sudo apt-get install {' '.join(missing)}{component}")


def non_free_sources(folder: Path) -> list[str]:
    """apt-get options that read Debian's main and non-free components of this release from a
    sources list and package lists of their own in ``folder``, leaving the system's untouched."""
    codename = platform.freedesktop_os_release()["VERSION_CODENAME"]
    (folder / "sources.list").write_text(
        f"deb http://deb.debian.org/debian {codename} main non-free\n"
    )
    (folder / "lists" / "partial").mkdir(parents=True)
    return [
        "-o", f"Dir::Etc::sourcelist={folder / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State::Lists={folder / 'lists'}",
    ]  # fmt: skip


def package_installed(package: str) -> bool:
    """Whether the Debian package ``package`` is installed (``dpkg-query``)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return result.returncode == 0 and result.stdout.endswith("installed")


def split_voices(engine: str, split: str) -> tuple[Voice, ...]:
    """The voices of ``engine`` that speak ``split``: all of them in training, the English ones in
    the test split."""
    return tuple(v for v in VOICES[engine] if split == "train" or v.language == "english")


def spoken_form(word: str, voice: Voice) -> str:
    """``word`` as ``voice`` is given it: English as is, else respelled (`RESPELLINGS`)."""
    return word if voice.language == "english" else RESPELLINGS[voice.language][word]


def plan_split(
    rng: np.random.Generator, engine: str, per_class: int, split: str = "train"
) -> list[Item]:
    """The spoken clips of one split: ``per_class`` per command word and of ``_unknown_``,
    each with a random voice of ``engine`` (`split_voices`), rate, F0 and punctuation."""
    voices = split_voices(engine, split)
    plan = []
    for label in (*kws.CORE_WORDS, kws.UNKNOWN):
        for _ in range(per_class):
            word = str(rng.choice(kws.UNKNOWN_WORDS)) if label == kws.UNKNOWN else label
            voice = voices[rng.integers(len(voices))]
            mark = voice.punctuation[rng.integers(len(voice.punctuation))]
            text = spoken_form(word, voice) + mark
            stretch = round(float(rng.uniform(*STRETCH)), 3)
            f0 = int(rng.integers(*voice.f0)) if voice.f0 else None
            plan.append(Item(label, voice, text, stretch, f0))
    return plan


def trim(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` at 16 kHz, float32, leading and trailing silence trimmed."""
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = soxr.resample(audio.astype(np.float32), rate, kws.SAMPLING_RATE)
    loud = np.flatnonzero(np.abs(audio) > kws.TRIM_THRESHOLD * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def flite_say(flite: str, item: Item) -> np.ndarray:
    """One item spoken by flite."""
    settings = ["--setf", f"duration_stretch={item.stretch}"]
    if item.f0 is not None:
        settings += ["--setf", f"int_f0_target_mean={item.f0}"]
    with tempfile.NamedTemporaryFile(suffix=".wav") as file:
        subprocess.run(
            [flite, "-voice", item.voice.name, *settings, "-t", item.text, "-o", file.name],
            check=True,
            capture_output=True,
        )
        audio, rate = soundfile.read(file.name, dtype="float32")
    return trim(audio, rate)


def festival_say(festival: str, items: list[Item]) -> list[np.ndarray]:
    """Items spoken by one festival process (a Scheme script of ``(voice_...)``, duration stretch,
    target F0 and ``utt.synth`` for each)."""
    with tempfile.TemporaryDirectory() as folder:
        lines = []
        for index, item in enumerate(items):
            lines.append(f"(voice_{item.voice.name})")
            lines.append(f"(Parameter.set 'Duration_Stretch {item.stretch})")
            if item.f0 is not None:
                lines.append(
                    f"(set! int_lr_params '((target_f0_mean {item.f0}) (target_f0_std "
                    f"{round(item.f0 * 0.2)}) (model_f0_mean 170) (model_f0_std 34)))"
                )
            lines.append(
                f'(utt.save.wave (utt.synth (Utterance Text "{item.text}")) '
                f'"{folder}/{index}.wav" \'riff)'
            )
        script = Path(folder) / "say.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run([festival, "-b", str(script)], check=True, capture_output=True)
        spoken = []
        for index in range(len(items)):
            audio, rate = soundfile.read(f"{folder}/{index}.wav", dtype="float32")
            spoken.append(trim(audio, rate))
    return spoken


def pico_say(pico: str, item: Item) -> np.ndarray:
    """One item spoken by Pico (its ``<pitch>`` and ``<speed>`` markup, in percent)."""
    speed = round(100 / item.stretch)
    text = f'<speed level="{speed}">{item.text}</speed>'
    if item.f0 is not None:
        text = f'<pitch level="{item.f0}">{text}</pitch>'
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/say.wav"  # pico2wave names its format by the suffix
        subprocess.run(
            [pico, "-l", item.voice.name, "-w", path, text], check=True, capture_output=True
        )
        audio, rate = soundfile.read(path, dtype="float32")
    return trim(audio, rate)


def say(engine: str, program: str, items: list[Item]) -> list[np.ndarray]:
    """``items`` spoken by ``engine`` (festival: one process for all of them)."""
    if engine == "festival":
        return festival_say(program, items)
    one = flite_say if engine == "flite" else pico_say
    return [one(program, item) for item in items]


def speak(engine: str, program: str, plan: list[Item], workers: int) -> list[np.ndarray]:
    """Every item of ``plan`` spoken by ``engine`` (``workers`` processes at a time)."""
    chunks = [plan[start : start + 100] for start in range(0, len(plan), 100)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return [audio for chunk in pool.map(lambda c: say(engine, program, c), chunks)
                for audio in chunk]  # fmt: skip


def render(seed: int, index: int, speech: np.ndarray, conditions: bool) -> np.ndarray:
    """Clip ``index`` of a split: the word placed with noise (`make_kws_dataset.place_word`), with
    recording conditions from a second generator when ``conditions``."""
    rng = np.random.default_rng([seed, index])
    extra = np.random.default_rng([seed, index, 1]) if conditions else None
    return kws.place_word(rng, speech, extra)


def write_split(
    engine: str, program: str, out: Path, split: str, plan: list[Item], seed: int, workers: int
) -> list[dict]:
    """Synthesise, render and write one split of one engine; its rows for ``clips.csv``.
    Half the training clips are recorded in conditions; test clips get only noise (as espeak-ng's
    test split)."""
    conditions = split == "train"
    speech = speak(engine, program, plan, workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        clips = list(pool.map(lambda i: render(seed, i, speech[i], conditions), range(len(plan))))
    silence_rng = np.random.default_rng([seed, len(plan)])
    per_class = len(plan) // (len(kws.CORE_WORDS) + 1)
    clips += [kws.background(silence_rng, conditions) for _ in range(per_class)]
    items: list[Item | None] = [*plan, *([None] * per_class)]
    counts = dict.fromkeys(kws.LABELS, 0)
    rows = []
    for item, clip in zip(items, clips, strict=True):
        label = item.label if item else kws.SILENCE
        folder = out / engine / split / label
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{counts[label]:05d}.wav"
        soundfile.write(path, np.clip(clip, -1.0, 1.0), kws.SAMPLING_RATE, subtype="PCM_16")
        counts[label] += 1
        rows.append({
            "path": path.relative_to(out.parent).as_posix(), "split": split, "label": label,
            "engine": engine, "voice": item.voice.name if item else "",
            "speaker": item.voice.speaker if item else "", "text": item.text if item else "",
            "stretch": item.stretch if item else "", "f0": item.f0 if item and item.f0 else "",
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output directory (e.g. data/kws/engines)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--train-per-class", type=int, default=800)
    parser.add_argument("--test-per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    for engine in args.engines:
        program = ensure_engine(engine)
        rng = np.random.default_rng([args.seed, ENGINES.index(engine)])
        rows = []
        for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
            plan = plan_split(rng, engine, per_class, split)
            seed = 1000 + args.seed * 10 + ENGINES.index(engine) * 2 + (split == "test")
            rows += write_split(engine, program, args.out, split, plan, seed, args.workers)
            print(f"{engine} {split}: {len(plan)} spoken clips", file=sys.stderr)
        with open(args.out / engine / "clips.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        stats = {
            "seed": args.seed,
            "engine": engine,
            "voices": [dataclasses.asdict(voice) for voice in VOICES[engine]],
            "stretch": STRETCH,
            "punctuation": PUNCTUATION,
            "conditions_probability": kws.CONDITIONS_PROBABILITY,
            "clips": {
                split: sum(row["split"] == split for row in rows) for split in ("train", "test")
            },
        }
        (args.out / engine / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")


if __name__ == "__main__":
    main()
