"""transformers' model tests for AST, ported to ast-jax's Flax models.

Reference: transformers' tests/models/audio_spectrogram_transformer/
test_modeling_audio_spectrogram_transformer.py (`ASTModelTest`, `ASTModelTester`) and the
`ModelTesterMixin` it inherits (tests/test_modeling_common.py, as of the last release that still
carried the PyTorch <-> Flax equivalence cases, commit 3719481c). The tester's config (patch 2,
strides 2, 24 frames x 16 bins, 32 wide, 2 layers, 4 heads, dropout 0.1), batch (13) and
tolerances are transformers'; transformers' PyTorch model runs live as the reference, built from
the same config with every parameter perturbed (conftest's `hf_model`), and saved with its own
`save_pretrained`.

Which mixin cases apply to a Flax model: those about what the model computes and how its weights
are saved, loaded, converted and initialised. Ported (25 cases; 29 tests with the three dtypes
and the two checkpoint formats):
  from ASTModelTest: test_forward_signature, test_model;
  from ModelTesterMixin: test_save_load, test_from_pretrained_no_checkpoint, test_initialization,
  test_determinism, test_batching_equivalence, test_training, test_attention_outputs,
  test_hidden_states_output, test_model_main_input_name, test_correct_missing_keys,
  test_can_use_safetensors, test_load_save_without_tied_weights,
  test_model_weights_reload_no_missing_tied_weights, test_model_outputs_equivalence,
  test_equivalence_pt_to_flax, test_equivalence_flax_to_pt, test_flax_from_pt_safetensors,
  test_load_with_mismatched_shapes, test_mismatched_shapes_have_properly_initialized_weights,
  test_matched_shapes_have_loaded_weights_when_some_mismatched_shapes_exist,
  test_model_is_small, test_eager_matches_sdpa_inference (float16, bfloat16, float32; ast-jax's
  kernels: the explicit softmax for "eager", the fused XLA kernel for "sdpa", plus the per-head
  loop), test_sdpa_can_dispatch_non_composite_models.

Not applicable (PyTorch or text-model machinery with no counterpart in a Flax model, or skipped
for AST by transformers itself): test_inputs_embeds and test_inputs_embeds_matches_input_ids
(AST has no embeddings input; skipped by transformers), test_model_get_set_embeddings (module
objects), test_keep_in_fp32_modules and test_save_load_keys_to_ignore_on_save (AST sets neither),
the gradient-checkpointing, torchscript, torch.fx, torch.compile, head-masking, head-pruning,
retain_grad, feed-forward-chunking, resize-embeddings, tied-weights, fast-init, low_cpu_mem,
device-map / offload / multi-GPU / model-parallel cases, test_torch_save_load, the flash-attention
and composite/sliding-window SDPA cases, test_sdpa_can_dispatch_on_flash and
test_sdpa_can_compile_dynamic (CUDA), the TensorFlow cross tests, test_problem_types (transformers
runs it only for sequence and image classifiers), test_custom_4d_attention_mask and
test_forward_with_num_logits_to_keep (generative models), and the pipeline mixin (AST's
audio-classification pipeline test is skipped by transformers; ast-jax's pipeline is
`AudioClassifier`).

Out of this file: test_model_from_pretrained and the integration test (they need the network):
tests/test_hf_slow.py, gated on RUN_SLOW=1.

Deliberately different (README, "Differences from transformers"), kept and tested:
* no `labels=` argument and no `loss` output: a Flax model is a pure function, and the loss is
  the training step's (test_training computes it from the logits and checks it against
  transformers' `loss`);
* no `return_dict=False`: outputs are always dataclasses, `.to_tuple()` is the tuple form
  (test_model_outputs_equivalence, test_attention_outputs);
* the frozen config: `config.replace(output_attentions=True)` where transformers assigns
  (test_attention_outputs, test_hidden_states_output, test_batching_equivalence);
* missing-key names follow the checkpoint (HF's on-disk names, or ast-jax's param paths), not the
  PyTorch model's in-memory names that transformers 5 reports; the counts agree
  (test_model_weights_reload_no_missing_tied_weights).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import transformers
from flax.traverse_util import flatten_dict
from safetensors.numpy import load_file, save_file

from ast_jax import (
    ASTConfig,
    ASTForAudioClassification,
    ASTModel,
    export_hf,
    load_pretrained,
    params_from_hf,
    params_to_hf,
    resolve_attention,
    save_pretrained,
)
from ast_jax.checkpoints.keymaps import HF_PREFIX, _canonical_key

# ASTModelTester
BATCH_SIZE = 13
TESTER = {
    "patch_size": 2,
    "max_length": 24,
    "num_mel_bins": 16,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "frequency_stride": 2,
    "time_stride": 2,
}
# in AST, the sequence is the patches plus the cls and distillation tokens
SEQ_LENGTH = ((16 - 2) // 2 + 1) * ((24 - 2) // 2 + 1) + 2
ALL_MODEL_CLASSES = (ASTModel, ASTForAudioClassification)
# check_pt_flax_outputs' default
PT_FLAX_TOL = 1e-4


def get_config(**changes) -> ASTConfig:
    return ASTConfig(**TESTER, **changes)


def floats_tensor(shape: tuple[int, ...], scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Uniform float32 values in [0, scale), as the tester's inputs."""
    return (scale * np.random.default_rng(seed).random(shape)).astype(np.float32)


def prepare_config_and_inputs_for_common() -> tuple[ASTConfig, dict[str, np.ndarray]]:
    shape = (BATCH_SIZE, TESTER["max_length"], TESTER["num_mel_bins"])
    return get_config(), {"input_values": floats_tensor(shape)}


def init(model_class, config: ASTConfig, seed: int = 0) -> dict:
    x = jnp.zeros((1, config.max_length, config.num_mel_bins), jnp.float32)
    return model_class(config).init(jax.random.key(seed), x)["params"]


def perturbed(params: dict, seed: int = 1, scale: float = 0.05) -> dict:
    """`params` + noise, so that zero-initialised tokens and unit LayerNorms carry information."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [
        np.asarray(leaf + scale * jax.random.normal(key, leaf.shape))
        for leaf, key in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, noisy)


def apply(model_class, config, params, input_values, **kwargs):
    return model_class(config).apply({"params": params}, input_values, **kwargs)


def _config_zero_init(config: ASTConfig) -> ASTConfig:
    # transformers sets every "*_range", "*_std", "initializer_factor" field to 1e-10
    return config.replace(initializer_range=1e-10)


def _hf_tester_model(hf_model, model_class, **changes):
    return hf_model(
        with_head=model_class is ASTForAudioClassification, num_labels=2, **TESTER, **changes
    )


def _flat(params: dict) -> dict:
    return flatten_dict(params, sep="/")


def _trees_equal(a: dict, b: dict) -> bool:
    a, b = _flat(a), _flat(b)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _fields(output) -> dict:
    return {
        f.name: getattr(output, f.name)
        for f in dataclasses.fields(output)
        if getattr(output, f.name) is not None
    }


def check_pt_flax_outputs(fx_outputs, pt_outputs, tol=PT_FLAX_TOL, name="outputs"):
    """transformers' recursive PyTorch/Flax comparison: same non-None keys in the same order,
    same types and lengths, same shapes, max |difference| within `tol`."""
    if dataclasses.is_dataclass(fx_outputs):
        fx_keys = tuple(_fields(fx_outputs))
        pt_keys = tuple(k for k, v in pt_outputs.items() if v is not None)
        assert fx_keys == pt_keys, f"{name}: output keys differ between Flax and PyTorch"
        for key in fx_keys:
            check_pt_flax_outputs(
                getattr(fx_outputs, key), pt_outputs[key], tol=tol, name=f"{name}.{key}"
            )
    elif isinstance(fx_outputs, (tuple, list)):
        assert type(fx_outputs) is type(pt_outputs), f"{name}: output types differ"
        assert len(fx_outputs) == len(pt_outputs), f"{name}: output lengths differ"
        for i, (fx, pt) in enumerate(zip(fx_outputs, pt_outputs, strict=True)):
            check_pt_flax_outputs(fx, pt, tol=tol, name=f"{name}_{i}")
    else:
        fx, pt = np.array(fx_outputs), pt_outputs.detach().cpu().numpy()
        assert fx.shape == pt.shape, f"{name}: output shapes differ"
        fx[np.isnan(pt)] = 0
        pt[np.isnan(fx)] = 0
        max_diff = np.amax(np.abs(fx - pt))
        assert max_diff <= tol, f"{name}: difference between PyTorch and Flax is {max_diff}"


def _pt_outputs(pt_model, input_values: np.ndarray):
    with torch.no_grad():
        return pt_model(
            torch.from_numpy(input_values), output_hidden_states=True, output_attentions=True
        )


# ---- ASTModelTest ---------------------------------------------------------------------------


def test_forward_signature():
    for model_class in ALL_MODEL_CLASSES:
        signature = inspect.signature(model_class.__call__)
        arg_names = [*signature.parameters.keys()][1:]  # after self
        expected_arg_names = ["input_values"]
        assert arg_names[:1] == expected_arg_names
        hf_class = getattr(transformers, model_class.__name__)
        assert [*inspect.signature(hf_class.forward).parameters][1:2] == expected_arg_names


def test_model():
    config, inputs = prepare_config_and_inputs_for_common()
    params = init(ASTModel, config)
    result = apply(ASTModel, config, params, inputs["input_values"])
    assert result.last_hidden_state.shape == (BATCH_SIZE, SEQ_LENGTH, TESTER["hidden_size"])
    reference = transformers.ASTModel(transformers.ASTConfig(**TESTER)).eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(inputs["input_values"])).last_hidden_state.shape
    assert result.last_hidden_state.shape == tuple(expected)


# ---- ModelTesterMixin -----------------------------------------------------------------------


def test_save_load():
    config, inputs = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        first = apply(model_class, config, params, inputs["input_values"]).to_tuple()[0]
        with tempfile.TemporaryDirectory() as tmpdirname:
            save_pretrained(tmpdirname, config, params)
            # the config file should be saved (a generation config never: AST cannot generate)
            assert os.path.exists(os.path.join(tmpdirname, "config.json"))
            assert not os.path.exists(os.path.join(tmpdirname, "generation_config.json"))
            config_2, params_2 = load_pretrained(tmpdirname)
        second = apply(model_class, config_2, params_2, inputs["input_values"]).to_tuple()[0]
        out_1, out_2 = np.nan_to_num(np.asarray(first)), np.nan_to_num(np.asarray(second))
        assert np.amax(np.abs(out_1 - out_2)) <= 1e-5


def test_from_pretrained_no_checkpoint(hf_model, save_hf, tmp_path):
    # from_pretrained(None, config=config, state_dict=state_dict): params from a state dict in
    # memory are the params loaded from the same weights on disk.
    config = get_config()
    for model_class in ALL_MODEL_CLASSES:
        model = _hf_tester_model(hf_model, model_class)
        state_dict = {key: value.numpy() for key, value in model.state_dict().items()}
        with_head = model_class is ASTForAudioClassification
        new_params = params_from_hf(state_dict, config, with_head=with_head)
        _, loaded = load_pretrained(save_hf(model, tmp_path / model_class.__name__))
        assert _trees_equal(new_params, loaded)


def test_initialization():
    config, _ = prepare_config_and_inputs_for_common()
    configs_no_init = _config_zero_init(config)
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, configs_no_init)
        for name, param in _flat(params).items():
            mean = round(float(np.mean(param)) * 1e9) / 1e9
            assert mean in [0.0, 1.0], (
                f"Parameter {name} of {model_class.__name__} seems not properly initialized"
            )
    # transformers' own model passes the same check
    hf_config = transformers.ASTConfig(**{**TESTER, "initializer_range": 1e-10})
    for name, param in transformers.ASTForAudioClassification(hf_config).named_parameters():
        assert round(param.data.mean().item() * 1e9) / 1e9 in [0.0, 1.0], name


def test_determinism():
    config, inputs = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        first = np.asarray(apply(model_class, config, params, inputs["input_values"]).to_tuple()[0])
        second = np.asarray(
            apply(model_class, config, params, inputs["input_values"]).to_tuple()[0]
        )
        out_1, out_2 = first[~np.isnan(first)], second[~np.isnan(second)]
        assert np.amax(np.abs(out_1 - out_2)) <= 1e-5


def test_batching_equivalence():
    """Batched and single-row outputs agree: cosine distance <= 1e-3 for every output (the
    measure transformers uses for models of continuous inputs)."""

    def equivalence(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        return 1.0 - float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-38))

    def recursive_check(batched, single, model_name, key):
        if isinstance(batched, (list, tuple)):
            for batched_value, single_value in zip(batched, single, strict=True):
                recursive_check(batched_value, single_value, model_name, key)
            return
        batched, single = np.asarray(batched), np.asarray(single)
        batched_row = batched[tuple(slice(0, n) for n in single.shape)]
        for value, what in ((batched_row, "Batched"), (single, "Single row")):
            assert not np.isnan(value).any(), f"{what} output has nan in {model_name} for {key}"
            assert not np.isinf(value).any(), f"{what} output has inf in {model_name} for {key}"
        difference = equivalence(batched_row, single)
        assert difference <= 1e-3, f"{model_name} {key}: difference {difference}"

    config, batched_input = prepare_config_and_inputs_for_common()
    config = config.replace(output_hidden_states=True)
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        single_row_input = batched_input["input_values"][:1]
        batched_output = apply(model_class, config, params, batched_input["input_values"])
        row_output = apply(model_class, config, params, single_row_input)
        for key, value in _fields(batched_output).items():
            recursive_check(value, getattr(row_output, key), model_class.__name__, key)


def test_training(hf_model):
    # Difference: the model takes no labels; the loss a Flax user computes from the logits is
    # transformers' loss (single-label cross-entropy for integer labels and num_labels > 1).
    config, inputs = prepare_config_and_inputs_for_common()
    model_class = ASTForAudioClassification  # transformers skips the base model
    pt_model = _hf_tester_model(hf_model, model_class)
    params = params_from_hf(
        {key: value.numpy() for key, value in pt_model.state_dict().items()}, config
    )
    labels = np.zeros(BATCH_SIZE, np.int32)  # _prepare_for_class(return_labels=True)

    def loss_fn(params, deterministic=True, rng=None):
        logits = (
            ASTForAudioClassification(config)
            .apply(
                {"params": params},
                inputs["input_values"],
                deterministic=deterministic,
                rngs=None if rng is None else {"dropout": rng},
            )
            .logits
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    with torch.no_grad():
        pt_loss = pt_model(
            torch.from_numpy(inputs["input_values"]), labels=torch.from_numpy(labels).long()
        ).loss
    # The logits agree to ~1e-7 (float32, another op order); a mean cross-entropy of order 1
    # inherits that, so 1e-5 fails only on a different loss.
    assert abs(float(loss_fn(params)) - pt_loss.item()) <= 1e-5
    # model.train(); loss.backward(): with dropout on, every parameter gets a finite gradient
    loss, grads = jax.value_and_grad(loss_fn)(params, False, jax.random.key(0))
    assert np.isfinite(float(loss))
    flat = _flat(grads)
    assert flat.keys() == _flat(params).keys()
    for name, grad in flat.items():
        assert np.all(np.isfinite(grad)), f"{name} has no finite gradient"
        assert np.any(grad != 0), f"{name} has no gradient"


def test_attention_outputs():
    config, inputs = prepare_config_and_inputs_for_common()
    x = inputs["input_values"]
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        outputs = apply(
            model_class, config, params, x, output_attentions=True, output_hidden_states=False
        )
        attentions = outputs.attentions
        assert len(attentions) == TESTER["num_hidden_layers"]

        # check that output_attentions also work using config (frozen: replaced, not assigned)
        attention_config = config.replace(output_attentions=True)
        outputs = apply(model_class, attention_config, params, x)
        attentions = outputs.attentions
        assert len(attentions) == TESTER["num_hidden_layers"]
        assert list(attentions[0].shape[-3:]) == [
            TESTER["num_attention_heads"],
            SEQ_LENGTH,
            SEQ_LENGTH,
        ]
        out_len = len(outputs.to_tuple())

        # Check attention is always last and order is fine
        outputs = apply(
            model_class,
            attention_config,
            params,
            x,
            output_attentions=True,
            output_hidden_states=True,
        )
        assert out_len + 1 == len(outputs.to_tuple())
        self_attentions = outputs.to_tuple()[-1]
        assert self_attentions is outputs.attentions
        assert len(self_attentions) == TESTER["num_hidden_layers"]
        assert list(self_attentions[0].shape[-3:]) == [
            TESTER["num_attention_heads"],
            SEQ_LENGTH,
            SEQ_LENGTH,
        ]


def test_hidden_states_output():
    def check_hidden_states_output(config, model_class, **kwargs):
        params = init(model_class, config)
        outputs = apply(model_class, config, params, inputs["input_values"], **kwargs)
        hidden_states = outputs.hidden_states
        expected_num_layers = TESTER["num_hidden_layers"] + 1
        assert len(hidden_states) == expected_num_layers
        assert list(hidden_states[0].shape[-2:]) == [SEQ_LENGTH, TESTER["hidden_size"]]

    config, inputs = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        check_hidden_states_output(config, model_class, output_hidden_states=True)
        # check that output_hidden_states also work using config
        check_hidden_states_output(config.replace(output_hidden_states=True), model_class)


def test_model_main_input_name():
    for model_class in ALL_MODEL_CLASSES:
        model_signature = inspect.signature(model_class.__call__)
        # The main input is the name of the argument after `self`
        observed_main_input_name = list(model_signature.parameters.keys())[1]
        assert model_class.main_input_name == observed_main_input_name
        hf_class = getattr(transformers, model_class.__name__)
        assert model_class.main_input_name == hf_class.main_input_name


@pytest.mark.parametrize("fmt", ["ast-jax", "hf"])
def test_correct_missing_keys(fmt, tmp_path):
    # The base model saved, the head model loaded: the head's keys are reported missing.
    config = get_config()
    params = init(ASTForAudioClassification, config)
    if fmt == "ast-jax":
        save_pretrained(tmp_path, config, params["backbone"])
    else:
        export_hf(tmp_path, config, params["backbone"])
    with pytest.warns(UserWarning, match="newly initialised"):
        _, loaded, loading_info = load_pretrained(
            tmp_path, with_head=True, output_loading_info=True
        )
    assert len(loading_info["missing_keys"]) > 0
    assert _trees_equal(loaded["backbone"], params["backbone"])
    if fmt == "hf":  # transformers, loading the same directory, misses the same keys
        _, theirs = transformers.ASTForAudioClassification.from_pretrained(
            tmp_path, output_loading_info=True
        )
        assert set(loading_info["missing_keys"]) == set(theirs["missing_keys"])


def test_can_use_safetensors():
    config, _ = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        with tempfile.TemporaryDirectory() as d:
            save_pretrained(d, config, params)  # ast_jax.safetensors, always
            _, model_reloaded, infos = load_pretrained(d, output_loading_info=True)
        # Checking the state dicts are correct
        reloaded_state = _flat(model_reloaded)
        for k, v in _flat(params).items():
            assert k in reloaded_state, f"Key {k} is missing from reloaded"
            np.testing.assert_array_equal(v, reloaded_state[k], err_msg=k)
        # Checking there was no complain of missing weights
        assert infos["missing_keys"] == []


def test_load_save_without_tied_weights():
    # AST ties no weights; saved in Hugging Face's format, transformers and ast-jax reload it.
    config, _ = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        params = perturbed(init(model_class, config))
        with tempfile.TemporaryDirectory() as d:
            export_hf(d, config, params)
            _, model_reloaded, infos = load_pretrained(d, output_loading_info=True)
            hf_class = getattr(transformers, model_class.__name__)
            _, hf_infos = hf_class.from_pretrained(d, output_loading_info=True)
        assert _trees_equal(model_reloaded, params)
        assert infos["missing_keys"] == [] and not hf_infos["missing_keys"]
        assert infos["unexpected_keys"] == [] and not hf_infos["unexpected_keys"]


@pytest.mark.parametrize("fmt", ["ast-jax", "hf"])
def test_model_weights_reload_no_missing_tied_weights(fmt, tmp_path):
    config = get_config()
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        tmp_dir = tmp_path / model_class.__name__
        # We are nuking ALL weights on file, so every parameter should yell on load. (A float
        # placeholder: transformers 5 takes the model dtype from the file and refuses int64.)
        placeholder_dict = {"tensor": np.array([1, 2], np.float32)}
        if fmt == "ast-jax":
            save_pretrained(tmp_dir, config, params)
            metadata = {"format": "ast-jax", "version": "1"}
            save_file(placeholder_dict, tmp_dir / "ast_jax.safetensors", metadata=metadata)
            param_names = set(_flat(params))
        else:
            export_hf(tmp_dir, config, params)
            save_file(placeholder_dict, tmp_dir / "model.safetensors", metadata={"format": "pt"})
            param_names = set(params_to_hf(params, config))
        with_head = model_class is ASTForAudioClassification
        with (
            pytest.warns(UserWarning, match="newly initialised"),
            pytest.warns(UserWarning, match=r"not used by .*\['tensor'\]"),
        ):
            _, reloaded, infos = load_pretrained(
                tmp_dir, with_head=with_head, output_loading_info=True
            )
        missing_keys = set(infos["missing_keys"])
        assert missing_keys - param_names == set()  # no extra missing
        assert param_names - missing_keys == set()  # no missed missing
        assert infos["unexpected_keys"] == ["tensor"]
        assert _flat(reloaded).keys() == _flat(params).keys()
        if fmt == "hf":  # transformers names them in memory (v5 names); the counts agree
            hf_class = getattr(transformers, model_class.__name__)
            _, hf_infos = hf_class.from_pretrained(tmp_dir, output_loading_info=True)
            assert len(hf_infos["missing_keys"]) == len(missing_keys)
            assert set(hf_infos["unexpected_keys"]) == {"tensor"}


def test_model_outputs_equivalence(hf_model):
    # Difference: no return_dict=False; the tuple form is `.to_tuple()`, checked against the named
    # fields and against the length of transformers' tuple for the same request.
    config, inputs = prepare_config_and_inputs_for_common()
    x = inputs["input_values"]
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        pt_model = _hf_tester_model(hf_model, model_class)
        for kwargs in (
            {},
            {"output_hidden_states": True},
            {"output_attentions": True},
            {"output_hidden_states": True, "output_attentions": True},
        ):
            outputs = apply(model_class, config, params, x, **kwargs)
            tuple_output, dict_output = outputs.to_tuple(), tuple(_fields(outputs).values())
            assert len(tuple_output) == len(dict_output)
            for tuple_object, dict_object in zip(tuple_output, dict_output, strict=True):
                tuple_leaves, dict_leaves = (
                    jax.tree.leaves(tuple_object),
                    jax.tree.leaves(dict_object),
                )
                for a, b in zip(tuple_leaves, dict_leaves, strict=True):
                    assert np.allclose(np.nan_to_num(a), np.nan_to_num(b), atol=1e-5)
            with torch.no_grad():
                pt_tuple = pt_model(torch.from_numpy(x), return_dict=False, **kwargs)
            assert len(pt_tuple) == len(tuple_output)


def test_equivalence_pt_to_flax(hf_model, tmp_path):
    config, inputs = prepare_config_and_inputs_for_common()
    # Output all for aggressive testing
    config = config.replace(output_hidden_states=True, output_attentions=True)
    for model_class in ALL_MODEL_CLASSES:
        pt_model = _hf_tester_model(hf_model, model_class)
        pt_outputs = _pt_outputs(pt_model, inputs["input_values"])
        # convert_pytorch_state_dict_to_flax
        fx_state = params_from_hf(
            {key: value.numpy() for key, value in pt_model.state_dict().items()},
            config,
            with_head=model_class is ASTForAudioClassification,
        )
        with jax.default_matmul_precision("float32"):
            fx_outputs = apply(model_class, config, fx_state, inputs["input_values"])
        check_pt_flax_outputs(fx_outputs, pt_outputs)

        # pt_model.save_pretrained(tmpdirname); fx_model_class.from_pretrained(from_pt=True)
        tmpdirname = tmp_path / model_class.__name__
        pt_model.save_pretrained(tmpdirname)
        loaded_config, fx_params_loaded = load_pretrained(tmpdirname)
        assert not loaded_config.output_hidden_states  # transformers saved its defaults
        with jax.default_matmul_precision("float32"):
            fx_outputs_loaded = apply(model_class, config, fx_params_loaded, inputs["input_values"])
        check_pt_flax_outputs(fx_outputs_loaded, pt_outputs)


def test_equivalence_flax_to_pt(tmp_path):
    config, inputs = prepare_config_and_inputs_for_common()
    config = config.replace(output_hidden_states=True, output_attentions=True)
    for model_class in ALL_MODEL_CLASSES:
        with_head = model_class is ASTForAudioClassification
        fx_params = perturbed(init(model_class, config))
        with jax.default_matmul_precision("float32"):
            fx_outputs = apply(model_class, config, fx_params, inputs["input_values"])

        # load_flax_weights_in_pytorch_model: into a PyTorch model in memory (transformers 5
        # names its modules differently in memory; the key map resolves both spellings)
        hf_class = getattr(transformers, model_class.__name__)
        pt_model = hf_class(transformers.ASTConfig(**TESTER, attn_implementation="eager")).eval()
        on_disk = params_to_hf(fx_params, config)
        prefix = HF_PREFIX if with_head else ""
        pt_state = {}
        for key in pt_model.state_dict():
            canonical = _canonical_key(key)
            name = canonical if canonical.startswith("classifier.") else prefix + canonical
            pt_state[key] = torch.from_numpy(np.array(on_disk[name]))
        pt_model.load_state_dict(pt_state, strict=True)
        check_pt_flax_outputs(fx_outputs, _pt_outputs(pt_model, inputs["input_values"]))

        # fx_model.save_pretrained(tmpdirname); model_class.from_pretrained(from_flax=True)
        tmpdirname = tmp_path / model_class.__name__
        export_hf(tmpdirname, config, fx_params)
        pt_model_loaded = hf_class.from_pretrained(tmpdirname, attn_implementation="eager").eval()
        check_pt_flax_outputs(fx_outputs, _pt_outputs(pt_model_loaded, inputs["input_values"]))


def test_flax_from_pt_safetensors(hf_model, save_hf, tmp_path):
    for model_class in ALL_MODEL_CLASSES:
        pt_model = _hf_tester_model(hf_model, model_class)
        _, flax_model_1 = load_pretrained(save_hf(pt_model, tmp_path / "st" / model_class.__name__))
        bin_dir = save_hf(pt_model, tmp_path / "bin" / model_class.__name__, weights="bin")
        _, flax_model_2 = load_pretrained(bin_dir)
        # Check models are equal
        assert _trees_equal(flax_model_1, flax_model_2)


def test_load_with_mismatched_shapes(tmp_path):
    config, inputs = prepare_config_and_inputs_for_common()
    model_class = ASTForAudioClassification  # the base model has no vocabulary to resize
    params = perturbed(init(model_class, config))
    save_pretrained(tmp_path / "ast-jax", config, params)
    export_hf(tmp_path / "hf", config, params)
    for tmp_dir in (tmp_path / "ast-jax", tmp_path / "hf"):
        # Fails when we don't set ignore_mismatched_sizes=True
        with pytest.raises(RuntimeError):
            load_pretrained(tmp_dir, num_labels=42)
        with pytest.warns(UserWarning, match="the shapes did not match"):
            new_config, new_params = load_pretrained(
                tmp_dir, num_labels=42, ignore_mismatched_sizes=True
            )
        logits = apply(model_class, new_config, new_params, inputs["input_values"]).logits
        assert logits.shape[1] == 42
    # transformers, on the same Hugging Face directory
    with pytest.raises(RuntimeError):
        transformers.ASTForAudioClassification.from_pretrained(tmp_path / "hf", num_labels=42)
    theirs = transformers.ASTForAudioClassification.from_pretrained(
        tmp_path / "hf", num_labels=42, ignore_mismatched_sizes=True
    )
    assert theirs.config.id2label == new_config.id2label


def test_mismatched_shapes_have_properly_initialized_weights(tmp_path):
    config, _ = prepare_config_and_inputs_for_common()
    configs_no_init = _config_zero_init(config)
    model_class = ASTForAudioClassification
    params = init(model_class, configs_no_init)
    save_pretrained(tmp_path, configs_no_init, params)

    # Fails when we don't set ignore_mismatched_sizes=True
    with pytest.raises(RuntimeError):
        load_pretrained(tmp_path, num_labels=42)
    with pytest.warns(UserWarning, match="the shapes did not match"):
        _, new_params, info = load_pretrained(
            tmp_path, num_labels=42, ignore_mismatched_sizes=True, output_loading_info=True
        )
    assert info["mismatched_keys"] == [
        ("classifier/dense/bias", (2,), (42,)),
        ("classifier/dense/kernel", (32, 2), (32, 42)),
    ]
    for name, param in _flat(new_params).items():
        param_mean = round(float(np.mean(param)) * 1e9) / 1e9
        assert param_mean in [0.0, 1.0], f"Parameter {name} seems not properly initialized"


def test_matched_shapes_have_loaded_weights_when_some_mismatched_shapes_exist(tmp_path):
    # transformers builds a dummy model with a 10 -> num_labels linear layer; the AST head is the
    # same situation: a checkpoint for 3 classes, loaded for 4, without the head's weight on file
    # (missing) and with its bias of the old shape (mismatched).
    config_3 = get_config(num_labels=3)
    params = perturbed(init(ASTForAudioClassification, config_3))
    export_hf(tmp_path, config_3, params)
    state_dict = load_file(tmp_path / "model.safetensors")
    del state_dict["classifier.dense.weight"]
    save_file(state_dict, tmp_path / "model.safetensors", metadata={"format": "pt"})

    # the weights with mismatched shape are those of a new model, from the same seed
    target = _flat(init(ASTForAudioClassification, get_config(num_labels=4), seed=0))
    with pytest.warns(UserWarning):
        _, new_params, info = load_pretrained(
            tmp_path, num_labels=4, ignore_mismatched_sizes=True, seed=0, output_loading_info=True
        )
    assert info["missing_keys"] == ["classifier.dense.weight"]
    assert info["mismatched_keys"] == [("classifier.dense.bias", (3,), (4,))]
    old, new = _flat(params), _flat(new_params)
    for key in new:
        if key not in ("classifier/dense/kernel", "classifier/dense/bias"):
            # check weight values for weights with matched shapes are identical
            assert np.max(np.abs(old[key] - new[key])) <= 1e-6, key
        else:
            # check we have some mismatched shapes
            assert old[key].shape != new[key].shape, key
            # check the weights with mismatched shape are properly initialized
            assert np.max(np.abs(new[key] - target[key])) <= 1e-6, key


def test_model_is_small():
    # Just a consistency check to make sure we are not running tests on 80M parameter models.
    config, _ = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        num_params = sum(leaf.size for leaf in jax.tree.leaves(init(model_class, config)))
        assert num_params < 1000000, f"{model_class} is too big for the common tests ({num_params})"


# transformers' tolerances for CPU, kernels off: (atol, rtol) per dtype
SDPA_TOLERANCES = {"float32": (1e-6, 1e-4), "float16": (5e-3, 5e-3), "bfloat16": (1e-2, 1e-2)}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_eager_matches_sdpa_inference(dtype):
    """The explicit softmax ("eager": what output_attentions computes) against the fused XLA
    kernel ("sdpa") and the per-head loop, on the last hidden state of a batch of 7, in `dtype`;
    as transformers, a case passes when 80% of the rows are close."""
    atol, rtol = SDPA_TOLERANCES[dtype]
    config, inputs = prepare_config_and_inputs_for_common()
    config = config.replace(dtype=dtype, output_hidden_states=True)
    x = inputs["input_values"][:7]
    fail_cases = []
    for model_class in ALL_MODEL_CLASSES:
        params = perturbed(init(model_class, config))
        for output_attentions in (True, False):
            eager = apply(
                model_class, config.replace(attention="xla"), params, x, output_attentions=True
            ).hidden_states[-1]
            for kernel in ("xla", "per_head"):
                fused = apply(
                    model_class,
                    config.replace(attention=kernel),
                    params,
                    x,
                    output_attentions=output_attentions,
                ).hidden_states[-1]
                eager_32 = np.asarray(eager, np.float32)
                fused_32 = np.asarray(fused, np.float32)
                results = [
                    np.allclose(a, b, atol=atol, rtol=rtol)
                    for a, b in zip(fused_32, eager_32, strict=True)
                ]
                if np.mean(results) < 0.8:
                    reldiff = np.mean(np.abs(fused_32 - eager_32) / (np.abs(eager_32) + 1e-12))
                    fail_cases.append(
                        f"{model_class.__name__}, {kernel}, output_attentions={output_attentions}: "
                        f"mean relative difference {reldiff:.3e}"
                    )
    assert not fail_cases, "\n".join(fail_cases)


def test_sdpa_can_dispatch_non_composite_models(tmp_path):
    """A loaded model runs the kernel the platform rule picks unless another is asked for; the
    choice is the config's, so it is visible before the model runs."""
    config, inputs = prepare_config_and_inputs_for_common()
    for model_class in ALL_MODEL_CLASSES:
        params = init(model_class, config)
        directory = tmp_path / model_class.__name__
        save_pretrained(directory, config, params)
        model_config, _ = load_pretrained(directory)
        assert model_config.attention == "auto"
        assert resolve_attention(model_config, platform="cpu").attention in ("xla", "per_head")
        assert resolve_attention(model_config, platform="gpu").attention == "xla"
        eager_config, eager_params = load_pretrained(directory, attention="per_head")
        assert eager_config.attention == "per_head"
        assert resolve_attention(eager_config) is eager_config
        assert eager_config.replace(attention="auto") == model_config
        out = apply(model_class, eager_config, eager_params, inputs["input_values"])
        assert np.all(np.isfinite(np.asarray(out.to_tuple()[0])))
