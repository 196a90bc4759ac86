"""Regenerate ``tests/data/kaldi_fbank_torchaudio.npz``, the torchaudio reference outputs.

The archive holds what ``torchaudio.compliance.kaldi.fbank`` and transformers'
``ASTFeatureExtractor`` (on its torchaudio path) compute for six 16 kHz test signals; see
``tests/data/README.md`` for the layout. The signals are inputs, stored verbatim in the archive as
``wave_{signal}``: the two speech clips came from espeak-ng, whose output changes between
versions, so this script reads the waveforms from an existing archive (by default the one it
rewrites) and recomputes every expected output from them.

This script cannot run in this project's environment: torchaudio publishes no build for the torch
version pinned in the ``test`` extra, and transformers only takes its torchaudio path when
torchaudio imports. Run it in a separate environment, e.g.::

    python -m venv /tmp/fixtures && /tmp/fixtures/bin/pip install \\
        torch==2.9.1 torchaudio==2.9.1 transformers numpy
    /tmp/fixtures/bin/python tests/data/make_fixtures.py --compare

The committed archive was made with torch and torchaudio 2.9.1 (the ``meta`` entry). Expect the
regenerated values to agree with it to float32 rounding, not bit for bit, with other versions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ARCHIVE = Path(__file__).with_name("kaldi_fbank_torchaudio.npz")
SAMPLE_RATE = 16000

# The signals, in archive order: (name, what it is). Waveforms are read from an existing archive.
SIGNALS = (
    ("yes", "espeak-ng speech, float in [-1, 1], 10008 samples"),
    ("sweep", "exponential sine sweep 100 Hz -> 7 kHz, 3 s"),
    ("noise", "white Gaussian noise, std 0.1, 1.5 s"),
    ("silence", "zeros, 0.5 s"),
    ("int16_scale", "another espeak-ng utterance at int16 scale (as floats), 9845 samples"),
    ("short_one_frame", "Gaussian noise, std 0.3, 400 samples: exactly one 25-ms frame"),
)

# The original AST recipe's keyword arguments to torchaudio's fbank.
_AST = {
    "htk_compat": True,
    "sample_frequency": SAMPLE_RATE,
    "use_energy": False,
    "window_type": "hanning",
    "num_mel_bins": 128,
    "dither": 0.0,
    "frame_shift": 10,
}
# fbank option sets, in archive order: (name, keyword arguments; all others at their defaults).
OPTION_SETS = (
    ("ast", _AST),
    ("kaldi_default", {}),
    ("energy_htk", {**_AST, "use_energy": True}),
    ("energy_first", {**_AST, "htk_compat": False, "use_energy": True}),
    ("povey_80", {"num_mel_bins": 80, "window_type": "povey"}),
    ("hamming_no_snip", {"window_type": "hamming", "snip_edges": False, "num_mel_bins": 40}),
    ("magnitude_linear", {"use_power": False, "use_log_fbank": False, "num_mel_bins": 64}),
    (
        "no_preemph_no_dc",
        {"preemphasis_coefficient": 0.0, "remove_dc_offset": False, "num_mel_bins": 40},
    ),
    (
        "rect_no_pow2",
        {
            "window_type": "rectangular",
            "round_to_power_of_two": False,
            "frame_length": 32.0,
            "num_mel_bins": 40,
        },
    ),
)

# ASTFeatureExtractor constructor arguments, in archive order (e0, e1, e2): AudioSet,
# Speech Commands and ESC-50 statistics; everything else at transformers' defaults.
EXTRACTOR_CONFIGS = (
    {"max_length": 1024, "mean": -4.2677393, "std": 4.5689974},
    {"max_length": 128, "mean": -6.845978, "std": 5.5654526},
    {"max_length": 512, "mean": -6.6268077, "std": 5.358466},
)
EXTRACTOR_SIGNALS = ("yes", "sweep", "noise")

NOTE = (
    "expected outputs computed by torchaudio.compliance.kaldi.fbank and "
    "transformers.ASTFeatureExtractor (torchaudio path)"
)


def frame_fits(num_samples: int, options: dict) -> bool:
    """Whether one frame fits: torchaudio asserts otherwise, so such cases are left out."""
    frame_length = options.get("frame_length", 25.0)
    sample_frequency = options.get("sample_frequency", 16000.0)
    return int(sample_frequency * frame_length * 0.001) <= num_samples


def read_waves(path: Path) -> dict[str, np.ndarray]:
    """The six input waveforms (float32, 1-D) of an existing archive."""
    with np.load(path) as archive:
        return {name: archive[f"wave_{name}"].astype(np.float32) for name, _ in SIGNALS}


def build_archive(
    waves: dict[str, np.ndarray], fbank, extract, meta: dict
) -> dict[str, np.ndarray]:
    """All archive entries, in archive order.

    Args:
      waves: signal name -> float32 waveform ``(S,)``.
      fbank: ``(waveform (S,) float32, **kwargs) -> (T, F)``: torchaudio's fbank.
      extract: ``(waveform (S,) float32, config dict) -> (max_length, F)``: the extractor's output
        for one clip, batch axis removed.
      meta: the ``meta`` entry (JSON object).
    """
    entries: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    case = 0
    for signal, _ in SIGNALS:
        for name, options in OPTION_SETS:
            if not frame_fits(waves[signal].size, options):
                continue
            entries[f"c{case}_kwargs"] = np.array(json.dumps(options))
            entries[f"c{case}_name"] = np.array(f"{signal}/{name}")
            entries[f"c{case}_fbank"] = np.asarray(fbank(waves[signal], **options), np.float32)
            case += 1
    for j, config in enumerate(EXTRACTOR_CONFIGS):
        for signal in EXTRACTOR_SIGNALS:
            values = np.asarray(extract(waves[signal], config), np.float32)
            entries[f"e{j}_{signal}_cfg"] = np.array(json.dumps(config))
            entries[f"e{j}_{signal}_values"] = values
    for signal, _ in SIGNALS:
        entries[f"wave_{signal}"] = waves[signal]
    return entries


def torchaudio_references() -> tuple:
    """``(fbank, extract, meta)`` backed by torchaudio and transformers."""
    try:
        import torch
        import torchaudio
        import transformers
        from torchaudio.compliance import kaldi
        from transformers import ASTFeatureExtractor
        from transformers.utils import is_speech_available
    except ImportError as error:
        raise SystemExit(
            f"{error}: this script needs torch, torchaudio and transformers (see its docstring)"
        ) from error

    if not is_speech_available():
        raise SystemExit("transformers does not see torchaudio: its extractor would not use it")

    def fbank(wave: np.ndarray, **options) -> np.ndarray:
        return kaldi.fbank(torch.from_numpy(wave)[None], **options).numpy()  # (1, S) float32 in

    def extract(wave: np.ndarray, config: dict) -> np.ndarray:
        extractor = ASTFeatureExtractor(**config)
        output = extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="np")
        return output["input_values"][0]

    meta = {
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "transformers": transformers.__version__,
        "note": NOTE,
    }
    return fbank, extract, meta


def compare(entries: dict[str, np.ndarray], path: Path) -> None:
    """Print, per numeric entry, the largest absolute difference from the archive at ``path``."""
    with np.load(path) as old:
        missing = sorted(set(old.files) ^ set(entries))
        if missing:
            print(f"keys differing from {path}: {missing}")
        for key, value in entries.items():
            if key in old.files and value.dtype.kind == "f" and not key.startswith("wave_"):
                if old[key].shape != value.shape:
                    print(f"{key}: shape {value.shape}, was {old[key].shape}")
                    continue
                diff = np.abs(value.astype(np.float64) - old[key]).max(initial=0.0)
                print(f"{key}: max |diff| {diff:.3g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--waves", type=Path, default=ARCHIVE, help="archive to read signals from")
    parser.add_argument("--out", type=Path, default=ARCHIVE, help="archive to write")
    parser.add_argument(
        "--compare", action="store_true", help="print differences from --waves before writing"
    )
    args = parser.parse_args(argv)
    fbank, extract, meta = torchaudio_references()
    entries = build_archive(read_waves(args.waves), fbank, extract, meta)
    if args.compare:
        compare(entries, args.waves)
    np.savez_compressed(args.out, **entries)
    print(f"wrote {len(entries)} entries to {args.out}")


if __name__ == "__main__":
    main()
