"""Export for serving (ast_jax.export): StableHLO and ONNX artifacts of the bundled model, run in
subprocesses that cannot import ast_jax or Flax, against ast_jax's own extractor and model; what a
TPU program contains; attention per platform; the command line and the serving example."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import soundfile

from ast_jax import (
    ASTForAudioClassification,
    bundled_model_path,
    export_model,
    export_onnx,
    export_stablehlo,
    load_audio,
    load_feature_extractor,
    load_pretrained,
)
from ast_jax.cli.main import main
from ast_jax.export.serving import serving_function
from ast_jax.frontend.windows import Windowing, sliding_windows
from ast_jax.model.params import abstract_params

ROOT = Path(__file__).parents[1]
AUDIO = ROOT / "examples" / "audio"
EXAMPLE = ROOT / "examples" / "serve_exported.py"
RATE = 16000
# The bar for an artifact's logits against ast_jax's NumPy extractor + Flax model
# (logits of the bundled model reach 10.6 on these clips). Measured: waveform input, StableHLO
# 8.2e-6 (the JAX front end's float32 FFT against the NumPy one's float64) and ONNX 7.0e-6 (its DFT
# as float32 matrix products); features input, StableHLO 0.0 and ONNX 3.8e-6 (onnxruntime's
# kernels). A wrong frame, window, padding mask or head moves logits by O(0.1).
ARTIFACT_ATOL = 5e-4
# Row splits of the 7 test clips: batches of 1, 2 and 4 through the same artifact.
BATCHES = [1, 2, 4]

# Imported first in every subprocess: importing any of the named packages raises.
_BLOCK = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this process")
        return None
sys.meta_path.insert(0, _Blocked())
"""
_NOT_FOR_STABLEHLO = ("ast_jax", "flax", "optax", "onnxruntime", "onnx", "torch", "transformers")
_NOT_FOR_ONNX = ("ast_jax", "flax", "optax", "jax", "jaxlib", "torch", "transformers")
# argv: artifact directory, inputs .npz, output .npy, batch sizes (JSON).
_RUN = """
import json, sys
import numpy as np
directory, inputs, output, sizes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
meta = json.load(open(f"{directory}/metadata.json"))
names = [item["name"] for item in meta["inputs"]]
path = f"{directory}/{meta['file']}"
if meta["format"] == "stablehlo":
    import jax
    exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
    def run(*arrays):
        return np.asarray(exported.call(*arrays))
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    def run(*arrays):
        return session.run(["logits"], dict(zip(names, arrays)))[0]
data = np.load(inputs)
logits, start = [], 0
for size in sizes:
    logits.append(run(*(data[name][start : start + size] for name in names)))
    start += size
np.save(output, np.concatenate(logits))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("ast_jax", "flax"))))
"""


def _isolated(blocked: tuple[str, ...], code: str, *args: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter in which importing ``blocked`` packages fails."""
    prelude = f"BLOCKED = {set(blocked)!r}\n" + _BLOCK
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-c", prelude + code, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def bundled():
    directory = bundled_model_path()
    config, params = load_pretrained(directory)
    return config, params, load_feature_extractor(directory)


@pytest.fixture(scope="module")
def clips(bundled):
    """Seven clips, padded to the artifact's window, with their lengths: the four 1-s kws examples
    and "yes" (all shorter than the window, so padding rows matter), a full window of noise and a
    0.3-s tone."""
    _, _, extractor = bundled
    size = extractor.samples_needed
    rng = np.random.default_rng(0)
    signals = [load_audio(path) for path in sorted(AUDIO.glob("*.wav"))]
    signals.append((0.1 * rng.standard_normal(size + 500)).astype(np.float32))
    signals.append((0.3 * np.sin(np.arange(4800) * 0.2)).astype(np.float32))
    waveforms = np.zeros((len(signals), size), np.float32)
    lengths = np.zeros(len(signals), np.int32)
    for row, signal in enumerate(signals):
        signal = signal[:size]
        waveforms[row, : signal.size], lengths[row] = signal, signal.size
    assert len(signals) == sum(BATCHES) and (lengths < size).sum() == 6
    features = extractor(
        [w[:n] for w, n in zip(waveforms, lengths, strict=True)], sampling_rate=RATE
    )["input_values"]
    return {"waveforms": waveforms, "lengths": lengths, "features": features}


@pytest.fixture(scope="module")
def reference(bundled, clips):
    """ast_jax's own pipeline: the NumPy feature extractor, then the Flax model."""
    config, params, _ = bundled
    model = ASTForAudioClassification(config)
    return np.asarray(jax.jit(model.apply)({"params": params}, clips["features"]).logits)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The bundled model exported in both formats, for both inputs: {(format, input): dir}."""
    root = tmp_path_factory.mktemp("exported")
    made = {}
    for format in ("stablehlo", "onnx"):
        for input in ("waveform", "features"):
            directory = root / f"{format}-{input}"
            export_model("kws12", directory, format=format, input=input)
            made[format, input] = directory
    return made


@pytest.mark.parametrize("format", ["stablehlo", "onnx"])
@pytest.mark.parametrize("input", ["waveform", "features"])
def test_artifact_runs_without_ast_jax_and_matches(
    artifacts, clips, reference, bundled, tmp_path, format, input
):
    directory = artifacts[format, input]
    meta = json.loads((directory / "metadata.json").read_text())
    np.savez(tmp_path / "inputs.npz", **clips)
    blocked = _NOT_FOR_STABLEHLO if format == "stablehlo" else _NOT_FOR_ONNX
    args = (str(directory), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npy"))
    run = _isolated(blocked, _RUN, *args, json.dumps(BATCHES))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []  # neither ast_jax nor flax was loaded
    logits = np.load(tmp_path / "out.npy")
    assert logits.shape == reference.shape == (7, 12)
    np.testing.assert_allclose(logits, reference, atol=ARTIFACT_ATOL, rtol=0)
    assert (logits.argmax(-1) == reference.argmax(-1)).all()
    config, params, extractor = bundled
    if format == "stablehlo":
        # The artifact is the program ast_jax jits: equal bit for bit at the same batch sizes.
        jitted = jax.jit(serving_function(config, params, extractor, input=input))
        names = [item["name"] for item in meta["inputs"]]
        splits = np.cumsum(BATCHES)[:-1]
        parts = zip(*(np.split(clips[name], splits) for name in names), strict=True)
        np.testing.assert_array_equal(
            logits, np.concatenate([np.asarray(jitted(*part)) for part in parts])
        )
    assert (directory / meta["file"]).stat().st_size == meta["bytes"]


def test_metadata_says_what_a_server_needs(artifacts, bundled):
    config, _, extractor = bundled
    meta = json.loads((artifacts["stablehlo", "waveform"] / "metadata.json").read_text())
    assert meta["input"] == "waveform"
    assert meta["inputs"] == [
        {"name": "waveforms", "shape": ["batch", extractor.samples_needed], "dtype": "float32"},
        {"name": "lengths", "shape": ["batch"], "dtype": "int32"},
    ]
    assert meta["outputs"] == [{"name": "logits", "shape": ["batch", 12], "dtype": "float32"}]
    assert (meta["sampling_rate"], meta["num_samples"]) == (RATE, 16240)
    assert (meta["hop_samples"], meta["frame_length_samples"], meta["frame_shift_samples"]) == (
        16000,
        400,
        160,
    )
    assert meta["labels"] == list(config.labels) and meta["score"] == "softmax"
    assert meta["platforms"] == ["cpu", "cuda", "tpu"]
    assert (meta["dtype"], meta["matmul_precision"]) == ("float32", "highest")
    assert meta["attention"] == {"cpu": "xla", "cuda": "xla", "tpu": "xla"}  # 46 tokens
    assert meta["ast_jax_version"] and meta["jax_version"] == jax.__version__
    onnx_meta = json.loads((artifacts["onnx", "features"] / "metadata.json").read_text())
    assert onnx_meta["inputs"] == [
        {"name": "features", "shape": ["batch", 100, 64], "dtype": "float32"}
    ]
    assert onnx_meta["platforms"] == ["onnxruntime"] and onnx_meta["file"] == "model.onnx"


def _custom_calls(text: str) -> set[str]:
    return set(re.findall(r"custom_call @([\w$.]+)", text))


def _products(text: str) -> list[tuple[str, ...]]:
    """The operand precisions of every dot_general and convolution of a StableHLO module (two
    each; none when left to the backend). The two print them differently:
    ``precision = [HIGHEST, HIGHEST]`` and ``precision_config = [#stablehlo<precision HIGHEST>,
    ...]``."""
    found = []
    for line in text.splitlines():
        if re.search(r"stablehlo\.(dot_general|convolution)\b", line):
            dot = re.search(r"precision = \[(\w+), (\w+)\]", line)
            conv = re.findall(r"#stablehlo<precision (\w+)>", line)
            found.append(dot.groups() if dot else tuple(conv))
    return found


@pytest.fixture(scope="module")
def long_model(tiny_config, tiny_params, tiny_extractor):
    """The tiny model: 146 tokens, so "auto" is the per-head loop on a CPU."""
    return tiny_config, tiny_params(), tiny_extractor


@pytest.mark.parametrize("model", ["bundled", "long_model"])
def test_tpu_program_is_self_contained_float32(request, model):
    config, params, extractor = request.getfixturevalue(model)
    exported = export_stablehlo(config, params, extractor, platforms=("tpu",))
    text = exported.mlir_module()
    assert exported.platforms == ("tpu",)
    # No host callbacks or foreign kernels: JAX's shape assertions (symbolic batch) only.
    assert _custom_calls(text) <= {"shape_assertion"}
    assert not re.search(r"callback|infeed|outfeed|stablehlo\.send|stablehlo\.recv", text)
    assert "f64" not in text
    assert "stablehlo.while" not in text  # the fused attention, not the CPU loop over heads
    # float32 means float32 on a TPU: every product asks for the highest precision.
    products = _products(text)
    assert len(products) >= 4 * config.num_hidden_layers + 2  # + the patch conv and the head
    assert set(products) == {("HIGHEST", "HIGHEST")}


def test_float32_precision_changes_nothing_on_a_cpu(long_model, monkeypatch):
    """XLA:CPU computes float32 products in float32 whatever the precision: the explicit
    HIGHEST (for TPUs and GPUs) leaves this CPU's logits bit-identical (the parity tests against
    transformers are unchanged)."""
    config, params, _ = long_model
    x = np.random.default_rng(6).normal(0, 0.5, (2, 128, 128)).astype(np.float32)

    def logits() -> tuple[np.ndarray, str]:
        apply = jax.jit(ASTForAudioClassification(config).apply)
        text = apply.lower({"params": params}, x).as_text()
        return np.asarray(apply({"params": params}, x).logits), text

    highest, text = logits()
    monkeypatch.setattr("ast_jax.model.layers.matmul_precision", lambda config: None)
    default, default_text = logits()
    assert "HIGHEST" in text and "HIGHEST" not in default_text
    np.testing.assert_array_equal(highest, default)


def test_bfloat16_keeps_the_default_precision(bundled):
    config, params, extractor = bundled
    config = dataclasses.replace(config, dtype="bfloat16")
    text = export_stablehlo(
        config, params, extractor, input="features", platforms=("tpu",)
    ).mlir_module()
    products = _products(text)
    assert len(products) >= 4 * config.num_hidden_layers + 2
    assert set(products) == {()}  # the backend's default: bfloat16 operands as they are


def test_multi_platform_program_picks_attention_per_platform(long_model, tmp_path):
    config, params, extractor = long_model
    exported = export_stablehlo(config, params, extractor, platforms=("cpu", "cuda", "tpu"))
    text = exported.mlir_module()
    assert "stablehlo.while" in text and "stablehlo.case" in text  # the CPU loop, one branch
    accelerators = export_stablehlo(config, params, extractor, platforms=("cuda", "tpu"))
    assert "stablehlo.while" not in accelerators.mlir_module()
    # Run on this CPU: the per-head loop, equal to the fused kernel within float32 rounding.
    rng = np.random.default_rng(3)
    waveforms = (0.2 * rng.standard_normal((3, extractor.samples_needed))).astype(np.float32)
    lengths = np.array([extractor.samples_needed, 12000, 3000], np.int32)
    loaded = jax.export.deserialize(exported.serialize())
    logits = np.asarray(loaded.call(waveforms, lengths))
    for kernel in ("per_head", "xla"):
        explicit = serving_function(
            dataclasses.replace(config, attention=kernel), params, extractor
        )
        # Different summation orders in float32: ~1e-7 on logits of order 1.
        np.testing.assert_allclose(logits, jax.jit(explicit)(waveforms, lengths), atol=1e-5)
    info = export_model(
        None, tmp_path, platforms=("cpu", "tpu"), input="features"
    )  # bundled kws12: 46 tokens, the fused kernel everywhere
    assert info["attention"] == {"cpu": "xla", "tpu": "xla"}


def test_onnx_takes_the_per_head_loop_for_long_sequences(long_model):
    import onnxruntime

    config, params, extractor = long_model
    model = export_onnx(config, params, extractor)
    assert any(node.op_type == "Loop" for node in model.graph.node)  # one loop per layer
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options)
    rng = np.random.default_rng(5)
    size = extractor.samples_needed
    waveforms = (0.2 * rng.standard_normal((4, size))).astype(np.float32)
    lengths = np.array([size, size, 9000, 20000], np.int32)
    jitted = jax.jit(serving_function(config, params, extractor))
    for rows in (slice(0, 1), slice(1, 4)):  # batches of 1 and 3 through one graph
        inputs = {"waveforms": waveforms[rows], "lengths": lengths[rows]}
        logits = session.run(["logits"], inputs)[0]
        # float32 in both, different DFT and summation orders: measured 1e-6 on logits ~1.
        np.testing.assert_allclose(logits, jitted(*inputs.values()), atol=1e-4)


def test_cudnn_attention_fails_clearly_without_a_gpu(bundled):
    config, params, extractor = bundled
    config = dataclasses.replace(config, attention="cudnn", dtype="bfloat16")
    assert abstract_params(config)["classifier"]["dense"]["kernel"].shape == (192, 12)
    with pytest.raises(ValueError, match=r"cudnn.*only on NVIDIA GPUs, not on cpu, tpu"):
        export_stablehlo(config, params, extractor)
    with pytest.raises(ValueError, match="no ONNX form"):
        export_onnx(config, params, extractor)
    if jax.default_backend() == "gpu":
        pytest.skip("this host has a GPU: cuDNN attention traces")
    with pytest.raises(RuntimeError, match="can only be traced on a host with a CUDA GPU"):
        export_stablehlo(config, params, extractor, platforms=("cuda",))


def test_onnx_float16(bundled, clips, reference, tmp_path):
    import onnxruntime

    config, params, extractor = bundled
    model = export_onnx(dataclasses.replace(config, dtype="float16"), params, extractor)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    inputs = {"waveforms": clips["waveforms"], "lengths": clips["lengths"]}
    logits = session.run(["logits"], inputs)[0]
    assert logits.dtype == np.float32
    # float16 products (spacing 2^-10 relative, logits up to ~10): measured 1.5e-3 from the
    # float32 reference here; JAX's own float16 run on this CPU is 9.3e-3 away.
    np.testing.assert_allclose(logits, reference, atol=2e-2, rtol=0)
    assert (logits.argmax(-1) == reference.argmax(-1)).all()


def test_export_command(tmp_path, capsys):
    assert main(["export", "kws12", str(tmp_path / "a"), "--platforms", "cpu,tpu"]) == 0
    assert "model.stablehlo" in capsys.readouterr().out
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["platforms"] == ["cpu", "tpu"] and meta["format"] == "stablehlo"
    assert main(["export", "kws12", "-o", str(tmp_path / "b"), "--input", "features"]) == 0
    assert json.loads((tmp_path / "b" / "metadata.json").read_text())["input"] == "features"
    # Cannot run: exit code 2 with a message.
    assert (
        main(["export", "kws12", str(tmp_path / "c"), "--format", "onnx", "--platforms", "cpu"])
        == 2
    )
    assert main(["export", "kws12", str(tmp_path / "c"), "--attention", "cudnn"]) == 2
    assert "only on NVIDIA GPUs" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as error:
        main(["export", "kws12", str(tmp_path / "c"), "--platforms", "cpu,metal"])
    assert error.value.code == 2


@pytest.mark.parametrize(("format", "batch_size"), [("stablehlo", 2), ("onnx", 3)])
def test_serving_example_matches_classify_windows(
    artifacts, bundled, tmp_path, tone, format, batch_size
):
    config, params, extractor = bundled
    folder = tmp_path / "clips"
    folder.mkdir()
    for path in AUDIO.glob("kws_*.wav"):
        (folder / path.name).write_bytes(path.read_bytes())
    long = np.stack([tone(300, 2.5), 0.5 * tone(800, 2.5)], axis=1)  # stereo, three windows
    soundfile.write(folder / "long.wav", long, RATE, subtype="PCM_16")
    soundfile.write(folder / "tiny.wav", tone(300, 0.01), RATE, subtype="PCM_16")  # < a frame
    blocked = (*(_NOT_FOR_STABLEHLO if format == "stablehlo" else _NOT_FOR_ONNX), "soundfile")
    code = f"import runpy, sys\nsys.argv = {[str(EXAMPLE)]!r} + sys.argv[1:]\n"
    code += "runpy.run_path(sys.argv[0], run_name='__main__')"
    directory = artifacts[format, "waveform"]
    args = (str(directory), str(folder), "--format", "json", "--batch-size", str(batch_size))
    run = _isolated(blocked, code, *args)
    assert run.returncode == 1, run.stderr  # tiny.wav failed, the others were served
    assert "tiny.wav" in run.stderr and "shorter than one frame" in run.stderr
    results = {Path(r["file"]).name: r for r in map(json.loads, run.stdout.splitlines())}
    assert sorted(results) == [
        "kws_go.wav",
        "kws_left.wav",
        "kws_stop.wav",
        "kws_yes.wav",
        "long.wav",
    ]
    # ast_jax's own windows (as `classify` cuts them), extractor and model.
    windowing = Windowing(
        window_frames=config.max_length,
        hop_frames=config.max_length,
        options=extractor.fbank_options,
    )
    model = jax.jit(ASTForAudioClassification(config).apply)
    for name, result in results.items():
        cuts = list(sliding_windows([load_audio(folder / name)], windowing))
        features = extractor([samples for _, samples in cuts], sampling_rate=RATE)
        expected = np.asarray(model({"params": params}, features["input_values"]).logits)
        logits = np.array([w["logits"] for w in result["windows"]])
        assert [w["start"] for w in result["windows"]] == [start / RATE for start, _ in cuts]
        np.testing.assert_allclose(logits, expected, atol=ARTIFACT_ATOL, rtol=0)
        top = result["top"][0][0]
        assert name == "long.wav" or top == name[len("kws_") : -len(".wav")]
    assert len(results["long.wav"]["windows"]) == 3
