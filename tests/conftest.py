"""Shared fixtures: tiny configs, params and checkpoints, transformers reference models, synthetic
audio and training data, and the torchaudio fbank reference data in tests/data.

Test modules import nothing from each other or from here; they ask for these fixtures by name.
Session-scoped fixtures hold values no test changes (configs, extractors, a checkpoint directory to
read) or are factories that build fresh objects on every call.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import pytest

from ast_jax import ASTConfig, ASTForAudioClassification, FeatureExtractor, save_pretrained
from ast_jax.model.params import init_params

if TYPE_CHECKING:
    import torch

SAMPLING_RATE = 16000
# Tests compile in a clean state and never write the user's cache; the subprocesses they start
# inherit this. tests/test_cli.py turns the cache on where it tests it.
os.environ["AST_JAX_COMPILATION_CACHE"] = "0"

# ---- tiny ast-jax models and checkpoints ------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_config() -> ASTConfig:
    """A tiny classifier for pipeline tests: 128 mel bins and 128 frames (1.28 s windows at 16 kHz)
    so the real feature extractor applies, and two 32-wide layers so a forward pass costs almost
    nothing."""
    return ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_length=128,
        num_mel_bins=128,
        labels=("alpha", "beta", "gamma", "delta", "epsilon"),
    )


@pytest.fixture(scope="session")
def tiny_extractor() -> FeatureExtractor:
    """The feature extractor of `tiny_config`: the Speech Commands preset, 128 frames x 128 bins."""
    return FeatureExtractor.from_preset("speech_commands")


@pytest.fixture(scope="session")
def small_config() -> ASTConfig:
    """Smaller still (40 frames x 20 bins, 16 wide), for model and checkpoint tests that need no
    feature extractor."""
    return ASTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_length=40,
        num_mel_bins=20,
        labels=("a", "b", "c"),
    )


@pytest.fixture(scope="session")
def tiny_params(tiny_config) -> Callable[..., dict]:
    """Factory: `tiny_params(seed=0, config=tiny_config)`, fresh randomly initialised
    `ASTForAudioClassification` params (HF's init) on every call."""

    def make(seed: int = 0, config: ASTConfig | None = None) -> dict:
        config = tiny_config if config is None else config
        x = np.zeros((1, config.max_length, config.num_mel_bins), np.float32)
        return ASTForAudioClassification(config).init(jax.random.key(seed), x)["params"]

    return make


@pytest.fixture(scope="session")
def save_tiny_checkpoint(tiny_config, tiny_extractor, tiny_params) -> Callable[..., Path]:
    """Factory: `save_tiny_checkpoint(directory, params=tiny_params())` writes an ast-jax checkpoint
    of `tiny_config` (config, params, preprocessor config) and returns the directory."""

    def save(directory: Path, params: dict | None = None) -> Path:
        params = tiny_params() if params is None else params
        return save_pretrained(directory, tiny_config, params, feature_extractor=tiny_extractor)

    return save


@pytest.fixture(scope="session")
def tiny_checkpoint(save_tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint with `tiny_params()`, written once per session: read it, never write
    into it."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


# ---- synthetic audio ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tone() -> Callable[..., np.ndarray]:
    """Factory: `tone(frequency, seconds, rate=16000, amplitude=0.5)`, a float32 sine."""

    def make(
        frequency: float, seconds: float, rate: int = SAMPLING_RATE, amplitude: float = 0.5
    ) -> np.ndarray:
        t = np.arange(round(seconds * rate)) / rate
        return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)

    return make


# ---- a tiny AST and a synthetic, learnable 3-class task for the training tests ------------------


@pytest.fixture(scope="session")
def trainable_config() -> ASTConfig:
    """A 1-layer AST on 32 frames x 24 bins with 8 x 8 patches and labels low, mid, high."""
    return ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        frequency_stride=8,
        time_stride=8,
        max_length=32,
        num_mel_bins=24,
        labels=("low", "mid", "high"),
        problem_type="single_label_classification",
        # Wider than HF's 0.02: with tiny weights the residual branches start near a saddle and a
        # model this small idles for tens of steps before it learns; the tests want a short run.
        initializer_range=0.1,
    )


@pytest.fixture(scope="session")
def trainable_extractor() -> FeatureExtractor:
    """The extractor of `trainable_config`, with the statistics of `synthetic_task`'s data:
    SpecAugment's masks (log-mel 0.0) then look like ordinary cells."""
    return FeatureExtractor(max_length=32, num_mel_bins=24, mean=0.5, std=1.5)


@pytest.fixture(scope="session")
def trainable_params(trainable_config) -> Callable[..., dict]:
    """Factory: `trainable_params(seed=0)`, fresh from-scratch params of `trainable_config`."""

    def make(seed: int = 0) -> dict:
        return init_params(trainable_config, seed, scratch=True)

    return make


@pytest.fixture(scope="session")
def synthetic_task() -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
    """Factory: `synthetic_task(num, seed)` gives `(num, 32, 24)` unnormalised log-mel features and
    `(num, 3)` one-hot targets for `trainable_config`.

    Each class is a band of raised log-mel energy (bins by class) at a random time position over a
    noise floor, so a 1-layer model learns it in a few epochs.
    """

    def make(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        classes = np.arange(num) % 3
        features = rng.normal(0.0, 1.0, (num, 32, 24)).astype(np.float32)
        for row, label in enumerate(classes):
            start = rng.integers(0, 20)
            features[row, start : start + 10, 8 * label : 8 * label + 8] += 5.0
        return features, np.eye(3, dtype=np.float32)[classes]

    return make


# ---- transformers reference models ---------------------------------------------------------------

# transformers ASTConfig arguments of `hf_model`'s default model.
HF_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_length": 100,
    "num_mel_bins": 48,
    "num_labels": 5,
}


@pytest.fixture(scope="session")
def hf_model() -> Callable[..., torch.nn.Module]:
    """Factory: `hf_model(*, seed=0, with_head=True, **config)`, a randomly initialised transformers
    `ASTForAudioClassification` (or `ASTModel`) of `HF_TINY` updated with `config`, in eval mode,
    with every parameter perturbed away from its init.

    HF initialises LayerNorms to (1, 0) and the tokens and position table to zero; the noise makes a
    mix-up of any two tensors (or a missing transform) visible in the outputs. The reference runs
    with `attn_implementation="eager"`: its softmax is the textbook float32 one, so the comparison
    is against the plainest reference, not a fused kernel.

    transformers' activation table has no "selu" although AST's docs list it: for
    `hidden_act="selu"` the model is built with "relu", then every MLP gets `torch.nn.SELU` and the
    config says "selu".
    """
    import torch
    import transformers

    def make(*, seed: int = 0, with_head: bool = True, **config: Any) -> torch.nn.Module:
        torch.manual_seed(seed)
        config = {**HF_TINY, **config}
        selu = config["hidden_act"] == "selu" if "hidden_act" in config else False
        if selu:
            config["hidden_act"] = "relu"
        hf_config = transformers.ASTConfig(**config, attn_implementation="eager")
        cls = transformers.ASTForAudioClassification if with_head else transformers.ASTModel
        model = cls(hf_config).eval()
        if selu:
            for module in model.modules():
                if hasattr(module, "activation_fn"):
                    module.activation_fn = torch.nn.SELU()
            model.config.hidden_act = "selu"
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
        return model

    return make


@pytest.fixture(scope="session")
def save_hf() -> Callable[..., Path]:
    """Factory: `save_hf(model, directory, *, weights="safetensors")` runs the model's
    `save_pretrained`, then, for weights="bin", keeps the same tensors as `pytorch_model.bin` only.
    Returns the directory."""
    import torch
    from safetensors.torch import load_file

    def save(model: torch.nn.Module, directory: Path, *, weights: str = "safetensors") -> Path:
        model.save_pretrained(directory)
        if weights == "bin":
            safetensors_path = directory / "model.safetensors"
            state_dict = collections.OrderedDict(load_file(safetensors_path))  # on-disk key names
            torch.save(state_dict, directory / "pytorch_model.bin")
            safetensors_path.unlink()
        return directory

    return save


@pytest.fixture(scope="session")
def hf_outputs() -> Callable[..., tuple[np.ndarray, list[np.ndarray]]]:
    """Function: `hf_outputs(model, x)`, (logits or last_hidden_state, hidden states) of a PyTorch
    model on `x` `(B, T, F)`."""
    import torch

    def run(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        with torch.no_grad():
            out = model(torch.from_numpy(x), output_hidden_states=True)
        main = out.logits if hasattr(out, "logits") else out.last_hidden_state
        return main.numpy(), [h.numpy() for h in out.hidden_states]

    return run


@pytest.fixture(scope="session")
def random_features() -> Callable[..., np.ndarray]:
    """Factory: `random_features(config, batch=2, seed=0)`, random float32 `(batch, max_length,
    num_mel_bins)` features with the spread of normalised log-mels (std 0.5)."""

    def make(config: Any, batch: int = 2, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        shape = (batch, config.max_length, config.num_mel_bins)
        return (0.5 * rng.standard_normal(shape)).astype(np.float32)

    return make


# ---- torchaudio fbank reference data (tests/data/README.md) --------------------------------------

_FBANK_REFERENCE = np.load(Path(__file__).parent / "data" / "kaldi_fbank_torchaudio.npz")
# Case i -> "signal/options" of the `c{i}_*` fbank reference cases.
_FBANK_CASE_NAMES = {
    int(key[1:-5]): str(_FBANK_REFERENCE[key])
    for key in _FBANK_REFERENCE.files
    if key.startswith("c") and key.endswith("_name")
}
_EXTRACTOR_CASES = sorted(
    key[: -len("_values")] for key in _FBANK_REFERENCE.files if key.endswith("_values")
)
_SPEECH_FBANK_CASES = sorted(i for i, name in _FBANK_CASE_NAMES.items() if name.startswith("yes/"))


@pytest.fixture(scope="session")
def fbank_reference() -> np.lib.npyio.NpzFile:
    """The torchaudio/transformers reference outputs in tests/data/kaldi_fbank_torchaudio.npz."""
    return _FBANK_REFERENCE


@pytest.fixture(scope="session")
def reference_wave(fbank_reference) -> Callable[[str], np.ndarray]:
    """Function: `reference_wave(signal)`, the reference data's float32 waveform `wave_{signal}`."""

    def wave(signal: str) -> np.ndarray:
        return fbank_reference[f"wave_{signal}"]

    return wave


@pytest.fixture(params=sorted(_FBANK_CASE_NAMES))
def fbank_case(request) -> int:
    """Each fbank reference case `i` in turn (keys `c{i}_name`, `c{i}_kwargs`, `c{i}_fbank`)."""
    return request.param


@pytest.fixture(params=_EXTRACTOR_CASES)
def extractor_case(request) -> str:
    """Each extractor reference case in turn (keys `{case}_cfg`, `{case}_values`)."""
    return request.param


@pytest.fixture(params=_SPEECH_FBANK_CASES, ids=lambda i: _FBANK_CASE_NAMES[i].split("/")[1])
def speech_fbank_options(request, fbank_reference) -> dict[str, Any]:
    """The `fbank` keyword arguments of each reference case on the speech clip ("yes") in turn."""
    return json.loads(str(fbank_reference[f"c{request.param}_kwargs"]))


# torchaudio computes in float32: its FFT rounds each bin to about 1e-7 of the frame's strongest
# bin, so bands more than ~70 dB below a frame's strongest band carry log errors above 1e-3 in the
# reference itself (we compute in float64). There we compare energies, to 1e-4 of the frame's peak
# band (measured worst: 1.3e-5). Either check fails on a wrong window, mel bank or framing.
# docs/numerics.md has the tolerances against torchaudio and transformers.
RESOLVABLE_RANGE = 1e-7
FLOOR_ENERGY_TOL = 1e-4


def _assert_close_in_resolvable_range(ours, ref, log_domain: bool, tol: float, scale: float = 1.0):
    """Compare (T, M) band energies per the rule above; ``scale`` converts values to log energy.
    Linear outputs get only the peak-relative check, the linear analogue of the log tolerance."""
    ref_energy = np.exp(ref.astype(np.float64) * scale) if log_domain else ref.astype(np.float64)
    our_energy = np.exp(ours.astype(np.float64) * scale) if log_domain else ours.astype(np.float64)
    peak = ref_energy.max(axis=-1)  # (T,)
    if log_domain:
        resolvable = ref_energy >= RESOLVABLE_RANGE * peak[:, None]
        excess = (np.abs(ours - ref) - tol)[resolvable]  # tol: scalar or per band (F,)
        assert excess.max(initial=-1.0) <= 0, f"error exceeds tolerance by {excess.max()}"
    # Silent frames (peak 0) must be exactly silent.
    np.testing.assert_array_equal(our_energy[peak == 0], 0.0)
    loud = peak > 0
    floor_error = np.abs(our_energy - ref_energy)[loud] / peak[loud, None]
    assert floor_error.max(initial=0.0) <= FLOOR_ENERGY_TOL, f"error {floor_error.max()} of peak"


@pytest.fixture(scope="session")
def assert_close_in_resolvable_range() -> Callable[..., None]:
    """Function: `assert_close_in_resolvable_range(ours, ref, log_domain, tol, scale=1.0)`, the
    comparison of `(T, M)` band energies described above."""
    return _assert_close_in_resolvable_range
