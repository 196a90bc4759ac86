"""transformers' feature-extractor tests for AST, ported to `ast_jax.FeatureExtractor`.

Sources (the names are kept):
* tests/models/audio_spectrogram_transformer/
  test_feature_extraction_audio_spectrogram_transformer.py (`ASTFeatureExtractionTest`):
  test_call, test_double_precision_pad, test_feat_extract_from_and_save_pretrained,
  test_feat_extract_to_json_file;
* its mixins, tests/test_sequence_feature_extraction_common.py and
  tests/test_feature_extraction_common.py: test_feat_extract_common_properties,
  test_batch_feature, test_batch_feature_pt, test_padding_from_list, test_padding_from_array,
  test_truncation_from_list, test_truncation_from_array, test_padding_accepts_tensors_pt,
  test_attention_mask, test_attention_mask_with_truncation, test_feat_extract_to_json_string,
  test_init_without_params.

16 ported cases. transformers' `ASTFeatureExtractor` runs live as the reference: `pad` must give
exactly what transformers' `pad` gives, call by call, and the JSON files are read by both.

Out of this file:
* test_integration needs the network (the first LibriSpeech dummy sample): it is the slow test in
  tests/test_hf_slow.py, gated on RUN_SLOW=1.
* the `_tf` cases (no TensorFlow here), and `ASTFeatureExtractionWithoutTorchaudioTest`, which
  reruns the cases with transformers' torchaudio backend switched off and checks it has `window`
  and `mel_filters` attributes: ast-jax has one NumPy backend, so there is nothing to switch.

Deliberately different (README, "Differences from transformers"), kept and tested here:
* `return_tensors="np"` (also "jax", "pt") on a batch of unequal lengths raises; transformers
  makes a NumPy object array of it, which no framework takes as a tensor (truncation cases);
* the call's `padding` / `truncation` accept what AST does (pad and cut to `max_length` frames)
  and refuse other values; transformers ignores both, as it ignores every unknown argument, which
  ast-jax refuses too;
* `return_tensors=None` gives one NumPy batch, not a list of per-clip arrays.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import tempfile

import numpy as np
import pytest
import torch
import transformers
from transformers.testing_utils import check_json_file_has_correct_format

from ast_jax import BatchFeature, FeatureExtractor

BATCH_SIZE = 7
MIN_SEQ_LENGTH = 400
MAX_SEQ_LENGTH = 2000
SEQ_LENGTH_DIFF = (MAX_SEQ_LENGTH - MIN_SEQ_LENGTH) // (BATCH_SIZE - 1)
FEATURE_SIZE = 1
# ASTFeatureExtractionTester.prepare_feat_extract_dict
FEAT_EXTRACT_DICT = {
    "feature_size": FEATURE_SIZE,
    "padding_value": 0.0,
    "sampling_rate": 16000,
    "return_attention_mask": True,
    "do_normalize": True,
}
NO_RATE = "ignore:FeatureExtractor was called without sampling_rate"


def floats_list(shape: tuple[int, int], scale: float = 1.0, seed: int = 0) -> list[list[float]]:
    """`shape[0]` rows of `shape[1]` uniform floats in [0, scale), as Python lists."""
    rng = random.Random(seed)
    return [[rng.random() * scale for _ in range(shape[1])] for _ in range(shape[0])]


def prepare_inputs_for_common(equal_length: bool = False, numpify: bool = False) -> list:
    """The tester's batch: 7 clips of increasing lengths 400, 666, ..., 1996 (or all 2000)."""
    if equal_length:
        speech_inputs = floats_list((BATCH_SIZE, MAX_SEQ_LENGTH))
    else:
        lengths = range(MIN_SEQ_LENGTH, MAX_SEQ_LENGTH, SEQ_LENGTH_DIFF)
        speech_inputs = [
            list(itertools.chain(*floats_list((length, FEATURE_SIZE), seed=length)))
            for length in lengths
        ]
    if numpify:
        speech_inputs = [np.asarray(x) for x in speech_inputs]
    return speech_inputs


def _inputs_have_equal_length(inputs) -> bool:
    return all(len(row) == len(inputs[0]) for row in inputs[1:])


def _inputs_are_equal(input_1, input_2) -> bool:
    return len(input_1) == len(input_2) and all(
        np.allclose(np.asarray(a), np.asarray(b), atol=1e-3)
        for a, b in zip(input_1, input_2, strict=True)
    )


class _BothPads:
    """Runs `pad` on ours and transformers' extractor and checks that they agree exactly."""

    def __init__(self, **feat_extract_dict):
        self.ours = FeatureExtractor(**feat_extract_dict)
        self.theirs = transformers.ASTFeatureExtractor(**feat_extract_dict)

    def __call__(self, speech_inputs, **kwargs) -> BatchFeature:
        ours = self.ours.pad(BatchFeature({"input_values": speech_inputs}), **kwargs)
        theirs = self.theirs.pad(
            transformers.BatchFeature({"input_values": speech_inputs}), **kwargs
        )
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            mine, reference = ours[key], theirs[key]
            if isinstance(reference, torch.Tensor):
                assert isinstance(mine, torch.Tensor) and mine.dtype == reference.dtype
                mine, reference = mine.numpy(), reference.numpy()
            assert len(mine) == len(reference), key
            for a, b in zip(mine, reference, strict=True):
                assert np.asarray(a).dtype == np.asarray(b).dtype, key
                np.testing.assert_array_equal(a, b, err_msg=key)
        return ours


@pytest.mark.filterwarnings(NO_RATE)
def test_call():
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    # create three inputs of length 800, 1000, and 1200
    speech_inputs = [floats_list((1, x), seed=x)[0] for x in range(800, 1400, 200)]
    np_speech_inputs = [np.asarray(speech_input) for speech_input in speech_inputs]

    # Test not batched input
    encoded_sequences_1 = feat_extract(speech_inputs[0], return_tensors="np").input_values
    encoded_sequences_2 = feat_extract(np_speech_inputs[0], return_tensors="np").input_values
    assert np.allclose(encoded_sequences_1, encoded_sequences_2, atol=1e-3)

    # Test batched
    encoded_sequences_1 = feat_extract(
        speech_inputs, padding=True, return_tensors="np"
    ).input_values
    encoded_sequences_2 = feat_extract(
        np_speech_inputs, padding=True, return_tensors="np"
    ).input_values
    for enc_seq_1, enc_seq_2 in zip(encoded_sequences_1, encoded_sequences_2, strict=True):
        assert np.allclose(enc_seq_1, enc_seq_2, atol=1e-3)
    reference = transformers.ASTFeatureExtractor(**FEAT_EXTRACT_DICT)(
        np_speech_inputs, padding=True, return_tensors="np"
    )
    assert encoded_sequences_1.shape == reference.input_values.shape == (3, 1024, 128)

    # Test 2-D numpy arrays are batched.
    speech_inputs = [floats_list((1, x), seed=1)[0] for x in (800, 800, 800)]
    np_speech_inputs = np.asarray(speech_inputs)
    encoded_sequences_1 = feat_extract(speech_inputs, return_tensors="np").input_values
    encoded_sequences_2 = feat_extract(np_speech_inputs, return_tensors="np").input_values
    for enc_seq_1, enc_seq_2 in zip(encoded_sequences_1, encoded_sequences_2, strict=True):
        assert np.allclose(enc_seq_1, enc_seq_2, atol=1e-3)


def test_double_precision_pad():
    feature_extractor = FeatureExtractor(**FEAT_EXTRACT_DICT)
    np_speech_inputs = np.random.default_rng(0).random(100).astype(np.float64)
    py_speech_inputs = np_speech_inputs.tolist()

    for inputs in [py_speech_inputs, np_speech_inputs]:
        np_processed = feature_extractor.pad([{"input_values": inputs}], return_tensors="np")
        assert np_processed.input_values.dtype == np.float32
        pt_processed = feature_extractor.pad([{"input_values": inputs}], return_tensors="pt")
        assert pt_processed.input_values.dtype == torch.float32


def test_feat_extract_from_and_save_pretrained():
    feat_extract_first = FeatureExtractor(**FEAT_EXTRACT_DICT)
    with tempfile.TemporaryDirectory() as tmpdirname:
        saved_file = feat_extract_first.save_pretrained(tmpdirname)[0]
        check_json_file_has_correct_format(saved_file)
        feat_extract_second = FeatureExtractor.from_pretrained(tmpdirname)
        theirs = transformers.ASTFeatureExtractor.from_pretrained(tmpdirname)
    dict_first = feat_extract_first.to_dict()
    dict_second = feat_extract_second.to_dict()
    assert dict_first == dict_second
    assert {key: theirs.to_dict()[key] for key in dict_first} == dict_first


def test_feat_extract_to_json_file():
    feat_extract_first = FeatureExtractor(**FEAT_EXTRACT_DICT)
    with tempfile.TemporaryDirectory() as tmpdirname:
        json_file_path = os.path.join(tmpdirname, "feat_extract.json")
        feat_extract_first.to_json_file(json_file_path)
        feat_extract_second = FeatureExtractor.from_json_file(json_file_path)
        theirs = transformers.ASTFeatureExtractor.from_json_file(json_file_path)
    dict_first = feat_extract_first.to_dict()
    dict_second = feat_extract_second.to_dict()
    assert dict_first == dict_second
    assert {key: theirs.to_dict()[key] for key in dict_first} == dict_first


def test_feat_extract_to_json_string():
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    obj = json.loads(feat_extract.to_json_string())
    for key, value in FEAT_EXTRACT_DICT.items():
        assert obj[key] == value
    reference = json.loads(transformers.ASTFeatureExtractor(**FEAT_EXTRACT_DICT).to_json_string())
    assert {key: reference[key] for key in obj} == obj


def test_init_without_params():
    feat_extract = FeatureExtractor()
    assert feat_extract is not None
    reference = transformers.ASTFeatureExtractor().to_dict()
    assert {key: reference[key] for key in feat_extract.to_dict()} == feat_extract.to_dict()


def test_feat_extract_common_properties():
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    assert hasattr(feat_extract, "feature_size")
    assert hasattr(feat_extract, "sampling_rate")
    assert hasattr(feat_extract, "padding_value")
    assert (
        list(feat_extract.model_input_names) == transformers.ASTFeatureExtractor.model_input_names
    )


def test_batch_feature():
    speech_inputs = prepare_inputs_for_common()
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    input_name = feat_extract.model_input_names[0]

    processed_features = BatchFeature({input_name: speech_inputs})
    assert all(
        len(x) == len(y) for x, y in zip(speech_inputs, processed_features[input_name], strict=True)
    )

    speech_inputs = prepare_inputs_for_common(equal_length=True)
    processed_features = BatchFeature({input_name: speech_inputs}, tensor_type="np")
    batch_features_input = processed_features[input_name]
    if len(batch_features_input.shape) < 3:
        batch_features_input = batch_features_input[:, :, None]
    assert batch_features_input.shape == (BATCH_SIZE, len(speech_inputs[0]), FEATURE_SIZE)


def test_batch_feature_pt():
    speech_inputs = prepare_inputs_for_common(equal_length=True)
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    input_name = feat_extract.model_input_names[0]

    processed_features = BatchFeature({input_name: speech_inputs}, tensor_type="pt")
    batch_features_input = processed_features[input_name]
    assert isinstance(batch_features_input, torch.Tensor)
    if len(batch_features_input.shape) < 3:
        batch_features_input = batch_features_input[:, :, None]
    assert batch_features_input.shape == (BATCH_SIZE, len(speech_inputs[0]), FEATURE_SIZE)


def _check_padding(numpify: bool = False) -> None:
    pad = _BothPads(**FEAT_EXTRACT_DICT)
    feat_extract = pad.ours
    speech_inputs = prepare_inputs_for_common(numpify=numpify)
    input_name = feat_extract.model_input_names[0]

    pad_diff = SEQ_LENGTH_DIFF
    pad_max_length = MAX_SEQ_LENGTH + pad_diff
    pad_min_length = MIN_SEQ_LENGTH

    # test padding for List[int] + numpy
    input_1 = pad(speech_inputs, padding=False)[input_name]
    input_2 = pad(speech_inputs, padding="longest")[input_name]
    input_3 = pad(speech_inputs, padding="max_length", max_length=len(speech_inputs[-1]))
    input_3 = input_3[input_name]
    input_4 = pad(speech_inputs, padding="longest", return_tensors="np")[input_name]

    # max_length parameter has to be provided when setting `padding="max_length"`
    with pytest.raises(ValueError):
        feat_extract.pad(BatchFeature({input_name: speech_inputs}), padding="max_length")

    input_5 = pad(
        speech_inputs, padding="max_length", max_length=pad_max_length, return_tensors="np"
    )
    input_5 = input_5[input_name]

    assert not _inputs_have_equal_length(input_1)
    assert _inputs_have_equal_length(input_2)
    assert _inputs_have_equal_length(input_3)
    assert _inputs_are_equal(input_2, input_3)
    assert len(input_1[0]) == pad_min_length
    assert len(input_1[1]) == pad_min_length + pad_diff
    assert input_4.shape[:2] == (BATCH_SIZE, len(input_3[0]))
    assert input_5.shape[:2] == (BATCH_SIZE, pad_max_length)

    # test padding for `pad_to_multiple_of` for List[int] + numpy
    input_6 = pad(speech_inputs, pad_to_multiple_of=10)[input_name]
    input_7 = pad(speech_inputs, padding="longest", pad_to_multiple_of=10)[input_name]
    input_8 = pad(
        speech_inputs, padding="max_length", pad_to_multiple_of=10, max_length=pad_max_length
    )[input_name]
    input_9 = pad(
        speech_inputs,
        padding="max_length",
        pad_to_multiple_of=10,
        max_length=pad_max_length,
        return_tensors="np",
    )[input_name]

    assert all(len(x) % 10 == 0 for x in input_6)
    assert _inputs_are_equal(input_6, input_7)

    expected_mult_pad_length = (
        pad_max_length if pad_max_length % 10 == 0 else (pad_max_length // 10 + 1) * 10
    )
    assert all(len(x) == expected_mult_pad_length for x in input_8)
    assert input_9.shape[:2] == (BATCH_SIZE, expected_mult_pad_length)

    # Check padding value is correct
    padding_vector_sum = (np.ones(FEATURE_SIZE) * feat_extract.padding_value).sum()
    assert (
        abs(
            np.asarray(input_2[0])[pad_min_length:].sum()
            - padding_vector_sum * (pad_max_length - pad_min_length)
        )
        < 1e-3
    )
    assert (
        abs(
            np.asarray(input_2[1])[pad_min_length + pad_diff :].sum()
            - padding_vector_sum * (pad_max_length - pad_min_length - pad_diff)
        )
        < 1e-3
    )
    assert (
        abs(
            np.asarray(input_2[2])[pad_min_length + 2 * pad_diff :].sum()
            - padding_vector_sum * (pad_max_length - pad_min_length - 2 * pad_diff)
        )
        < 1e-3
    )
    assert (
        abs(
            input_5[0, pad_min_length:].sum()
            - padding_vector_sum * (pad_max_length - pad_min_length)
        )
        < 1e-3
    )
    assert (
        abs(
            input_9[0, pad_min_length:].sum()
            - padding_vector_sum * (expected_mult_pad_length - pad_min_length)
        )
        < 1e-3
    )


def _check_truncation(numpify: bool = False) -> None:
    pad = _BothPads(**FEAT_EXTRACT_DICT)
    feat_extract = pad.ours
    speech_inputs = prepare_inputs_for_common(numpify=numpify)
    input_name = feat_extract.model_input_names[0]
    processed_features = BatchFeature({input_name: speech_inputs})

    # truncate to smallest
    input_1 = pad(
        speech_inputs, padding="max_length", max_length=len(speech_inputs[0]), truncation=True
    )[input_name]
    input_2 = pad(speech_inputs, padding="max_length", max_length=len(speech_inputs[0]))
    input_2 = input_2[input_name]

    assert _inputs_have_equal_length(input_1)
    assert not _inputs_have_equal_length(input_2)

    # truncate to smallest with np
    input_3 = pad(
        speech_inputs,
        padding="max_length",
        max_length=len(speech_inputs[0]),
        return_tensors="np",
        truncation=True,
    )[input_name]
    assert _inputs_have_equal_length(input_3)
    assert input_3.shape[1] == len(speech_inputs[0])

    # Difference: since truncation forces padding to be smaller than longest input, transformers
    # returns a NumPy object array of unequal rows; ast-jax refuses to call that a tensor.
    with pytest.raises(ValueError, match="rows have lengths"):
        feat_extract.pad(
            processed_features,
            padding="max_length",
            max_length=len(speech_inputs[0]),
            return_tensors="np",
        )
    assert transformers.ASTFeatureExtractor(**FEAT_EXTRACT_DICT).pad(
        transformers.BatchFeature({input_name: speech_inputs}),
        padding="max_length",
        max_length=len(speech_inputs[0]),
        return_tensors="np",
    )[input_name].dtype == np.dtype(object)

    # truncate to middle
    input_5 = pad(
        speech_inputs,
        padding="max_length",
        max_length=len(speech_inputs[1]),
        truncation=True,
        return_tensors="np",
    )[input_name]
    input_6 = pad(
        speech_inputs, padding="max_length", max_length=len(speech_inputs[1]), truncation=True
    )[input_name]
    # (transformers' input_7 is the NumPy object array again: here without return_tensors.)
    input_7 = pad(speech_inputs, padding="max_length", max_length=len(speech_inputs[1]))
    input_7 = input_7[input_name]

    assert input_5.shape[1] == len(speech_inputs[1])
    assert _inputs_have_equal_length(input_5)
    assert _inputs_have_equal_length(input_6)
    assert _inputs_are_equal(input_5, input_6)

    assert not _inputs_have_equal_length(input_7)
    assert len(input_7[-1]) == len(speech_inputs[-1])

    # padding has to be max_length when setting `truncation=True`
    with pytest.raises(ValueError):
        feat_extract.pad(processed_features, truncation=True)
    with pytest.raises(ValueError):
        feat_extract.pad(processed_features, padding="longest", truncation=True)
    # max_length has to be provided when setting `truncation=True` and padding="max_length"
    with pytest.raises(ValueError):
        feat_extract.pad(processed_features, padding="max_length", truncation=True)

    # test truncation for `pad_to_multiple_of` for List[int] + numpy
    pad_to_multiple_of = 12
    input_8 = pad(
        speech_inputs,
        padding="max_length",
        max_length=len(speech_inputs[0]),
        pad_to_multiple_of=pad_to_multiple_of,
        truncation=True,
    )[input_name]
    input_9 = pad(
        speech_inputs,
        padding="max_length",
        max_length=len(speech_inputs[0]),
        pad_to_multiple_of=pad_to_multiple_of,
    )[input_name]

    # retrieve expected_length as multiple of pad_to_multiple_of
    expected_length = len(speech_inputs[0])
    if expected_length % pad_to_multiple_of != 0:
        expected_length = ((len(speech_inputs[0]) // pad_to_multiple_of) + 1) * pad_to_multiple_of

    assert len(input_8[0]) == expected_length
    assert _inputs_have_equal_length(input_8)
    assert not _inputs_have_equal_length(input_9)


def test_padding_from_list():
    _check_padding(numpify=False)


def test_padding_from_array():
    _check_padding(numpify=True)


def test_truncation_from_list():
    _check_truncation(numpify=False)


def test_truncation_from_array():
    _check_truncation(numpify=True)


def test_padding_accepts_tensors_pt():
    feat_extract = FeatureExtractor(**FEAT_EXTRACT_DICT)
    speech_inputs = prepare_inputs_for_common()
    input_name = feat_extract.model_input_names[0]
    processed_features = BatchFeature({input_name: speech_inputs})

    input_np = feat_extract.pad(processed_features, padding="longest", return_tensors="np")
    input_pt = feat_extract.pad(processed_features, padding="longest", return_tensors="pt")
    input_np, input_pt = input_np[input_name], input_pt[input_name]
    assert abs(input_np.astype(np.float32).sum() - input_pt.numpy().astype(np.float32).sum()) < 1e-2


def test_attention_mask():
    feat_dict = dict(FEAT_EXTRACT_DICT)
    feat_dict["return_attention_mask"] = True
    pad = _BothPads(**feat_dict)
    speech_inputs = prepare_inputs_for_common()
    input_lengths = [len(x) for x in speech_inputs]
    input_name = pad.ours.model_input_names[0]

    processed = pad(speech_inputs, padding="longest", return_tensors="np")
    assert "attention_mask" in processed
    assert list(processed.attention_mask.shape) == list(processed[input_name].shape[:2])
    assert processed.attention_mask.sum(-1).tolist() == input_lengths


def test_attention_mask_with_truncation():
    feat_dict = dict(FEAT_EXTRACT_DICT)
    feat_dict["return_attention_mask"] = True
    pad = _BothPads(**feat_dict)
    speech_inputs = prepare_inputs_for_common()
    input_lengths = [len(x) for x in speech_inputs]
    input_name = pad.ours.model_input_names[0]
    max_length = min(input_lengths)

    processed_pad = pad(
        speech_inputs,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="np",
    )
    assert "attention_mask" in processed_pad
    assert list(processed_pad.attention_mask.shape) == [
        processed_pad[input_name].shape[0],
        max_length,
    ]
    assert processed_pad.attention_mask[:, :max_length].sum(-1).tolist() == [
        max_length for x in speech_inputs
    ]


# ---- deliberate differences ----------------------------------------------------------------------


def test_call_padding_and_truncation_accept_only_what_ast_does():
    extractor = FeatureExtractor()
    clip = np.asarray(floats_list((1, 4000))[0], np.float32) - 0.5
    fixed = extractor(clip, sampling_rate=16000)["input_values"]
    for kwargs in ({"padding": True}, {"padding": "max_length"}, {"truncation": True}):
        np.testing.assert_array_equal(extractor(clip, 16000, **kwargs)["input_values"], fixed)
    for kwargs in ({"padding": "longest"}, {"padding": False}, {"truncation": False}):
        # transformers ignores these and returns max_length frames all the same
        theirs = transformers.ASTFeatureExtractor()(clip, sampling_rate=16000, **kwargs)
        assert np.asarray(theirs["input_values"]).shape == (1, 1024, 128)
        with pytest.raises(ValueError, match="max_length=1024"):
            extractor(clip, sampling_rate=16000, **kwargs)


def test_call_unknown_arguments_raise():
    clip = np.zeros(4000, np.float32)
    for kwargs in ({"max_length": 512}, {"return_attention_mask": True}, {"frobnicate": 1}):
        transformers.ASTFeatureExtractor()(clip, sampling_rate=16000, **kwargs)  # ignored there
        with pytest.raises(TypeError, match=next(iter(kwargs))):
            FeatureExtractor()(clip, sampling_rate=16000, **kwargs)


def test_return_tensors():
    clips = [np.zeros(4000, np.float32), np.zeros(8000, np.float32)]
    extractor = FeatureExtractor(return_attention_mask=True)
    default = extractor(clips, sampling_rate=16000)
    # Difference: one NumPy batch without return_tensors (transformers: a list of clips).
    assert isinstance(default.input_values, np.ndarray) and default.input_values.shape[0] == 2
    theirs = transformers.ASTFeatureExtractor()(clips, sampling_rate=16000)
    assert isinstance(theirs["input_values"], list)
    pt = extractor(clips, sampling_rate=16000, return_tensors="pt")
    assert pt.input_values.dtype == torch.float32 and pt.attention_mask.dtype == torch.int32
    jx = extractor(clips, sampling_rate=16000, return_tensors="jax")
    assert type(jx.input_values).__module__.startswith("jax")
    for name in ("pt", "jax"):
        as_numpy = np.asarray(
            extractor(clips, sampling_rate=16000, return_tensors=name)["input_values"]
        )
        np.testing.assert_array_equal(as_numpy, default.input_values)
    with pytest.raises(ValueError, match="return_tensors must be None or one of"):
        extractor(clips, sampling_rate=16000, return_tensors="tf")
