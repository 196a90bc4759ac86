"""Flax AST vs transformers' PyTorch AST on random-init checkpoints, plus model behaviour."""

from __future__ import annotations

import dataclasses
import functools

import flax.errors
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ast_jax import ASTConfig, ASTForAudioClassification, ASTModel, load_pretrained
from ast_jax.model.attention import PER_HEAD_MIN_TOKENS, attention_per_head
from ast_jax.model.layers import activation, layer_norm
from ast_jax.model.params import build_model
from ast_jax.runtime.batching import per_example

# HF's own bar, atol = rtol = 1e-4, as in transformers' AST tests (docs/parity.md has the test
# tolerances). float32 in a different op order differs by ~1e-7 relative; rtol matters for deep
# hidden states, whose magnitude grows layer by layer.
FLOAT32_TOL = 1e-4
# bfloat16 keeps 8 significant bits (relative rounding 2^-9, ~0.2%). Rounding the inputs of every
# matmul and the residual stream over 12 layers accumulates to ~1-2% of the logit scale (measured
# 1.3% on the full-size model); 5% leaves headroom yet is far below what a real bug gives (O(100%)).
BF16_REL_TOL = 0.05

# name -> transformers config overrides of the `hf_model` fixture's default (HF_TINY in conftest.py)
PARITY_CONFIGS = {
    "strides_10_10": {"frequency_stride": 10, "time_stride": 10},
    "strides_12_12": {"frequency_stride": 12, "time_stride": 12},
    "strides_14_14": {"frequency_stride": 14, "time_stride": 14},
    "strides_16_16": {"frequency_stride": 16, "time_stride": 16},
    "strides_6_13_patch_8": {"frequency_stride": 6, "time_stride": 13, "patch_size": 8},
    "speech_commands_128_35": {"max_length": 128, "num_mel_bins": 128, "num_labels": 35},
    "no_qkv_bias": {"qkv_bias": False},
    "gelu_new": {"hidden_act": "gelu_new"},
    "relu": {"hidden_act": "relu"},
    "selu": {"hidden_act": "selu"},
    "no_labels": {"num_labels": 0},
    # The config of transformers' AST modeling unit tests: dropout 0.1, run deterministic.
    "hf_unit_test": {
        "patch_size": 2,
        "max_length": 24,
        "num_mel_bins": 16,
        "frequency_stride": 2,
        "time_stride": 2,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "num_labels": 10,
    },
}


@functools.partial(jax.jit, static_argnames=("config", "with_head"))
def _apply(params, x, *, config: ASTConfig, with_head: bool = True):
    """One jitted forward per config, shared by every test (the config is hashable)."""
    return build_model(config, with_head=with_head).apply(
        {"params": params}, x, output_hidden_states=True
    )


def _check_parity(out, reference, hidden_reference) -> tuple[float, float]:
    """Asserts logits (or last hidden state) and every hidden state match; returns max |diff|s."""
    main = np.asarray(out.logits if hasattr(out, "logits") else out.last_hidden_state)
    np.testing.assert_allclose(main, reference, atol=FLOAT32_TOL, rtol=FLOAT32_TOL)
    assert len(out.hidden_states) == len(hidden_reference)
    for h, r in zip(out.hidden_states, hidden_reference, strict=True):
        np.testing.assert_allclose(np.asarray(h), r, atol=FLOAT32_TOL, rtol=FLOAT32_TOL)
    hidden_diff = max(
        float(np.max(np.abs(np.asarray(h) - r)))
        for h, r in zip(out.hidden_states, hidden_reference, strict=True)
    )
    return float(np.max(np.abs(main - reference))), hidden_diff


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
@pytest.mark.parametrize("name", sorted(PARITY_CONFIGS))
def test_parity_with_transformers(
    hf_model, save_hf, hf_outputs, random_features, name, weights, tmp_path
):
    model = hf_model(**PARITY_CONFIGS[name])
    config, params = load_pretrained(save_hf(model, tmp_path, weights=weights))
    x = random_features(config)
    logits, hidden = hf_outputs(model, x)
    with jax.default_matmul_precision("float32"):
        out = _apply(params, x, config=config)
    assert out.logits.shape == logits.shape
    logit_diff, hidden_diff = _check_parity(out, logits, hidden)
    print(f"{name}/{weights}: max |logit diff| {logit_diff:.2e}, hidden {hidden_diff:.2e}")


@pytest.mark.parametrize("name", ["strides_10_10", "speech_commands_128_35", "hf_unit_test"])
def test_parity_with_transformers_per_head_attention(
    hf_model, save_hf, hf_outputs, random_features, name, tmp_path
):
    """The CPU attention loop (taken by "auto" only for long sequences) against HF too."""
    model = hf_model(**PARITY_CONFIGS[name])
    config, params = load_pretrained(save_hf(model, tmp_path), attention="per_head")
    x = random_features(config)
    logits, hidden = hf_outputs(model, x)
    with jax.default_matmul_precision("float32"):
        out = _apply(params, x, config=config)
    logit_diff, hidden_diff = _check_parity(out, logits, hidden)
    print(f"{name}/per_head: max |logit diff| {logit_diff:.2e}, hidden {hidden_diff:.2e}")


def test_backbone_parity_unprefixed_checkpoint(
    hf_model, save_hf, hf_outputs, random_features, tmp_path
):
    model = hf_model(with_head=False, frequency_stride=12, time_stride=9)
    config, params = load_pretrained(save_hf(model, tmp_path))
    assert "classifier" not in params
    x = random_features(config)
    last, hidden = hf_outputs(model, x)
    with jax.default_matmul_precision("float32"):
        out = _apply(params, x, config=config, with_head=False)
    last_diff, hidden_diff = _check_parity(out, last, hidden)
    print(f"backbone: max |last hidden diff| {last_diff:.2e}, hidden {hidden_diff:.2e}")


def test_full_size_parity_float32_and_bfloat16(
    hf_model, save_hf, hf_outputs, random_features, tmp_path
):
    """The default (AudioSet 10/10, 527 classes) size once: float32 parity, then bfloat16."""
    model = hf_model(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_length=1024,
        num_mel_bins=128,
        num_labels=527,
    )
    config, params = load_pretrained(save_hf(model, tmp_path))
    assert config == ASTConfig(labels=config.labels)
    x = random_features(config, batch=1)
    logits, hidden = hf_outputs(model, x)
    with jax.default_matmul_precision("float32"):
        out = _apply(params, x, config=config)
    logit_diff, hidden_diff = _check_parity(out, logits, hidden)
    scale = max(float(np.abs(h).max()) for h in hidden)
    print(
        f"full size: max |logit diff| {logit_diff:.2e}, hidden {hidden_diff:.2e} (max {scale:.1f})"
    )

    bf16 = ASTForAudioClassification(ASTConfig(labels=config.labels, dtype="bfloat16"))
    bf16_logits = jax.jit(bf16.apply)({"params": params}, x).logits
    assert bf16_logits.dtype == jnp.float32
    bf16_diff = float(np.max(np.abs(np.asarray(bf16_logits) - logits)))
    print(f"full size bfloat16: max |logit diff| {bf16_diff:.3e}, scale {np.abs(logits).max():.3f}")
    assert bf16_diff < BF16_REL_TOL * np.abs(logits).max()
    np.testing.assert_array_equal(np.argmax(bf16_logits, -1), np.argmax(logits, -1))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_tiny_within_tolerance_and_top1(random_features, dtype):
    config = ASTConfig(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_length=128,
        num_mel_bins=64,
        labels=[str(i) for i in range(35)],
        initializer_range=0.2,  # large head weights: well separated logits, a meaningful top-1
    )
    init_features = random_features(config)
    params = ASTForAudioClassification(config).init(jax.random.key(1), init_features)["params"]
    x = random_features(config, batch=8)
    with jax.default_matmul_precision("float32"):
        ref = np.asarray(_apply(params, x, config=config).logits)
    low = _apply(params, x, config=dataclasses.replace(config, dtype=dtype)).logits
    assert jax.tree.all(jax.tree.map(lambda p: p.dtype == jnp.float32, params))
    assert low.dtype == jnp.float32
    assert float(np.max(np.abs(np.asarray(low) - ref))) < BF16_REL_TOL * np.abs(ref).max()
    np.testing.assert_array_equal(np.argmax(low, -1), np.argmax(ref, -1))


# ---- behaviour on a tiny random Flax model ------------------------------------------------


def _qkv(shape, dtype, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return [3 * jax.random.normal(key, shape, jnp.float32).astype(dtype) for key in keys]


def _torch_attention_and_gradients(q, k, v):
    """Softmax attention of `(B, N, H, K)` inputs and the gradients of its sum of squares with
    respect to ``q``, ``k`` and ``v``, from torch's SDPA in float64."""
    inputs = [
        torch.tensor(np.asarray(x, np.float64)).transpose(1, 2).requires_grad_() for x in (q, k, v)
    ]  # (B, H, N, K)
    out = torch.nn.functional.scaled_dot_product_attention(*inputs)
    (out**2).sum().backward()
    return [x.detach().transpose(1, 2).numpy() for x in (out, *(x.grad for x in inputs))]


def test_attention_per_head_and_its_gradient_equal_float64_attention():
    q, k, v = _qkv((2, 37, 3, 8), jnp.float32)
    out, *reference_grads = _torch_attention_and_gradients(q, k, v)
    with jax.default_matmul_precision("float32"):
        # float32 products in another order: ~1e-7 relative; 1e-5 keeps far below a wrong head
        # order, scale or normalisation (O(1)).
        np.testing.assert_allclose(attention_per_head(q, k, v), out, atol=1e-5)
        grads = {
            f.__name__: jax.grad(lambda q, k, v, f=f: (f(q, k, v) ** 2).sum(), argnums=(0, 1, 2))(
                q, k, v
            )
            for f in (attention_per_head, jax.nn.dot_product_attention)
        }
    # The gradients reach ~175 (scores of up to ~30 over 37 keys). Rounding float32 products and
    # 37-term sums leaves XLA's own float32 gradient ~1.1e-6 of the largest value from float64
    # (the per-head VJP ~1.8e-6); 4e-6 of it bounds both, far below a wrong term (O(1) relative).
    for name, ours in grads.items():
        for grad, reference in zip(ours, reference_grads, strict=True):
            atol = 4e-6 * np.abs(reference).max()
            np.testing.assert_allclose(grad, reference, atol=atol, rtol=0, err_msg=name)


def test_attention_per_head_bfloat16_close_to_float32():
    q, k, v = _qkv((1, 40, 2, 16), jnp.bfloat16, seed=1)
    out = attention_per_head(q, k, v)
    assert out.dtype == jnp.bfloat16
    reference = jax.nn.dot_product_attention(*(a.astype(jnp.float32) for a in (q, k, v)))
    # bf16 rounding of the weights before the value product: ~2^-8 relative of |v| (<= ~12).
    np.testing.assert_allclose(out.astype(jnp.float32), reference, atol=0.1)


@pytest.mark.parametrize(("attention", "max_length", "loop_on"), [
    ("auto", 1024, {"cpu"}),  # 1214 tokens: the per-head loop on a CPU only
    ("auto", 128, set()),
    ("per_head", 128, {"cpu", "cuda", "tpu"}),
    ("xla", 1024, set()),
])  # fmt: skip
def test_attention_choice(small_config, attention, max_length, loop_on):
    # 3 x 101 patches at 1024 frames, 3 x 12 at 128
    config = dataclasses.replace(
        small_config, num_mel_bins=40, max_length=max_length, attention=attention
    )
    assert (config.seq_len >= PER_HEAD_MIN_TOKENS) == (max_length == 1024)
    model = ASTForAudioClassification(config)
    x = jax.ShapeDtypeStruct((1, config.max_length, config.num_mel_bins), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)
    apply = jax.jit(model.apply)
    # The program lowered for each platform, from this CPU host: "auto" is decided per platform
    # inside the program (the loop over heads is a stablehlo.while), never from the host.
    for platform in ("cpu", "cuda", "tpu"):
        text = jax.export.export(apply, platforms=(platform,))(params, x).mlir_module()
        assert ("stablehlo.while" in text) == (platform in loop_on), platform
    # jit on this host lowers for its backend and takes the same branch.
    text = apply.lower(params, x).as_text()
    assert ("stablehlo.while" in text) == (jax.default_backend() in loop_on)


@pytest.fixture(scope="module")
def small_params(tiny_params, small_config):
    return tiny_params(config=small_config)


@pytest.mark.parametrize("shape", [(2, 40, 21), (2, 41, 20), (40, 20), (1, 2, 40, 20)])
def test_wrong_input_shape_raises(small_config, small_params, shape):
    with pytest.raises(ValueError, match=r"\(B, max_length, num_mel_bins\) = \(B, 40, 20\)"):
        ASTForAudioClassification(small_config).apply(
            {"params": small_params}, np.zeros(shape, np.float32)
        )


def test_outputs_and_pooler(small_config, small_params, random_features):
    x = random_features(small_config, batch=3)
    out = ASTForAudioClassification(small_config).apply({"params": small_params}, x)
    assert out.logits.shape == (3, 3) and out.hidden_states is None
    backbone = ASTModel(small_config).apply(
        {"params": small_params["backbone"]}, x, output_hidden_states=True
    )
    assert backbone.last_hidden_state.shape == (3, small_config.seq_len, 16)
    assert len(backbone.hidden_states) == small_config.num_hidden_layers + 1
    pooled = (backbone.last_hidden_state[:, 0] + backbone.last_hidden_state[:, 1]) / 2
    np.testing.assert_array_equal(backbone.pooler_output, pooled)


def test_per_example_step_equals_the_batched_step(small_config, small_params):
    x = np.random.default_rng(3).normal(
        size=(3, small_config.max_length, small_config.num_mel_bins)
    )

    def step(params, x):
        out = ASTForAudioClassification(small_config).apply(
            {"params": params}, x, output_hidden_states=True
        )
        return {"logits": out.logits, "hidden": out.hidden_states}

    batched = jax.jit(step)(small_params, x)
    mapped = jax.jit(per_example(step))(small_params, x)
    # The same float32 arithmetic row by row; only matmul blocking may move the last bits.
    for ours, theirs in zip(jax.tree.leaves(mapped), jax.tree.leaves(batched), strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_batch_equals_per_row_loop(small_config, small_params, random_features):
    x = random_features(small_config, batch=4)
    model = ASTForAudioClassification(small_config)
    with jax.default_matmul_precision("float32"):
        batched = model.apply({"params": small_params}, x).logits
        rows = [model.apply({"params": small_params}, x[i : i + 1]).logits[0] for i in range(4)]
    np.testing.assert_allclose(batched, np.stack(rows), atol=1e-6)


def test_dropout_only_when_not_deterministic(small_config, small_params, random_features):
    config = dataclasses.replace(
        small_config, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3
    )
    model = ASTForAudioClassification(config)
    x = random_features(config)
    variables = {"params": small_params}
    eval_a = model.apply(variables, x).logits
    eval_b = model.apply(variables, x, rngs={"dropout": jax.random.key(5)}).logits
    np.testing.assert_array_equal(eval_a, eval_b)
    train = [
        model.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(s)}).logits
        for s in (1, 2)
    ]
    assert np.all(np.isfinite(train[0]))
    assert not np.allclose(train[0], eval_a) and not np.allclose(train[0], train[1])
    with pytest.raises(flax.errors.InvalidRngError):
        model.apply(variables, x, deterministic=False)


@pytest.mark.parametrize("attention", ["xla", "per_head"])
def test_scanned_training_layers_equal_the_unrolled_layers(
    small_config, random_features, attention
):
    # Without dropout, training mode (the layers as one scan) and evaluation (unrolled) are the
    # same function; float32 in another fusion order differs by ~1e-7 relative.
    config = dataclasses.replace(small_config, num_hidden_layers=3, attention=attention)
    model = ASTForAudioClassification(config)
    params = model.init(jax.random.key(3), random_features(model.config, batch=1))["params"]
    x = random_features(model.config, batch=2)

    def loss(params, deterministic):
        logits = model.apply({"params": params}, x, deterministic=deterministic).logits
        return (logits**2).sum(), logits

    with jax.default_matmul_precision("float32"):
        (_, scanned), scanned_grads = jax.value_and_grad(loss, has_aux=True)(params, False)
        (_, unrolled), unrolled_grads = jax.value_and_grad(loss, has_aux=True)(params, True)
    np.testing.assert_allclose(scanned, unrolled, atol=1e-6)
    for path, grad in flax.traverse_util.flatten_dict(scanned_grads, sep="/").items():
        reference = flax.traverse_util.flatten_dict(unrolled_grads, sep="/")[path]
        # Gradients sum many terms of both signs: an element's float32 error follows the
        # tensor's scale, not its own size (seen: 4.8e-4 on -43.4 beside values of ~2,600).
        atol = 1e-5 * np.abs(reference).max()
        np.testing.assert_allclose(grad, reference, atol=atol, rtol=1e-5, err_msg=path)


def test_param_tree_names_and_dtypes(small_config, small_params, random_features):
    flat = jax.tree_util.tree_flatten_with_path(small_params)[0]
    paths = {"/".join(k.key for k in path): leaf for path, leaf in flat}
    assert paths["backbone/layer_1/attention/qkv/kernel"].shape == (16, 48)
    assert paths["backbone/embeddings/patch_projection/kernel"].shape == (16, 16, 1, 16)
    assert paths["backbone/embeddings/position_embeddings"].shape == (1, small_config.seq_len, 16)
    assert paths["classifier/dense/kernel"].shape == (16, 3)
    assert {leaf.dtype for leaf in paths.values()} == {jnp.dtype(jnp.float32)}
    bf16_params = ASTForAudioClassification(
        dataclasses.replace(small_config, dtype="bfloat16")
    ).init(jax.random.key(0), random_features(small_config, batch=1))["params"]
    assert {leaf.dtype for leaf in jax.tree.leaves(bf16_params)} == {jnp.dtype(jnp.float32)}


# ---- parity traps, unit level -------------------------------------------------------------------

# float32 elementwise functions agree with torch to a few ulps.
UNIT_TOL = 1e-6


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("gelu", torch.nn.functional.gelu),  # exact erf form (JAX's default is the tanh one)
        ("gelu_new", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
        ("relu", torch.relu),
        ("selu", torch.selu),
    ],
)
def test_activations_match_torch(name, reference):
    x = np.linspace(-6, 6, 10_001, dtype=np.float32)
    expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(activation(name)(x), expected, atol=UNIT_TOL, rtol=UNIT_TOL)


# Rows with mean/std = 1000: the one-pass E[x^2] - E[x]^2 loses everything (error ~0.3), the
# two-pass variance stays at the input's own quantisation (ulp(1e3) / std ~ 1e-4). Rows with
# std 1e-5: variance 1e-10 is swamped by Flax's default eps 1e-6 but not by HF's 1e-12.
def test_bfloat16_gelu_is_the_tanh_form_within_bfloat16_rounding():
    x = jnp.linspace(-8.0, 8.0, 100_001)
    exact, fast = activation("gelu")(x), activation("gelu", jnp.bfloat16)(x)
    np.testing.assert_array_equal(fast, jax.nn.gelu(x, approximate=True))
    # The largest gap (4.7e-4, near x = 2.7) is under a tenth of bfloat16's spacing there (2^-6).
    assert float(jnp.abs(exact - fast).max()) < 2.0**-6 / 10
    assert activation("gelu", jnp.float16) is activation("gelu")


LAYER_NORM_TOL = 1e-3


@pytest.mark.parametrize(("offset", "spread"), [(1e3, 1.0), (0.0, 1e-5)])
def test_layer_norm_matches_torch(small_config, offset, spread):
    rng = np.random.default_rng(0)
    x = (offset + spread * rng.standard_normal((4, 64))).astype(np.float32)
    scale, bias = (
        rng.standard_normal(64).astype(np.float32),
        rng.standard_normal(64).astype(np.float32),
    )
    norm = layer_norm(small_config, "ln")
    ours = norm.apply({"params": {"scale": scale, "bias": bias}}, x)
    expected = torch.nn.functional.layer_norm(
        torch.from_numpy(x), (64,), torch.from_numpy(scale), torch.from_numpy(bias), eps=1e-12
    ).numpy()
    np.testing.assert_allclose(ours, expected, atol=LAYER_NORM_TOL, rtol=LAYER_NORM_TOL)
