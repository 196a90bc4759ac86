"""Randomly initialised transformers AST models written as Hugging Face checkpoint directories.

The reference runs with `attn_implementation="eager"`: its softmax is the textbook float32 one,
so the comparison is against the plainest reference, not a fused kernel.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from safetensors.torch import load_file

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_length": 100,
    "num_mel_bins": 48,
    "num_labels": 5,
}


def hf_model(*, seed: int = 0, with_head: bool = True, **config: Any) -> torch.nn.Module:
    """A transformers AST model in eval mode with every parameter perturbed away from its init.

    HF initialises LayerNorms to (1, 0) and the tokens and position table to zero; the noise makes a
    mix-up of any two tensors (or a missing transform) visible in the outputs.

    transformers' activation table has no "selu" although AST's docs list it: for
    `hidden_act="selu"` the model is built with "relu", then every MLP gets `torch.nn.SELU` and the
    config says "selu".
    """
    torch.manual_seed(seed)
    config = {**TINY, **config}
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


def save_hf(model: torch.nn.Module, directory: Path, *, weights: str = "safetensors") -> Path:
    """`save_pretrained`, then, for weights="bin", the same tensors as `pytorch_model.bin` only."""
    model.save_pretrained(directory)
    if weights == "bin":
        safetensors_path = directory / "model.safetensors"
        state_dict = collections.OrderedDict(load_file(safetensors_path))  # on-disk key names
        torch.save(state_dict, directory / "pytorch_model.bin")
        safetensors_path.unlink()
    return directory


def hf_outputs(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(logits or last_hidden_state, hidden states) of the PyTorch model on `x` `(B, T, F)`."""
    with torch.no_grad():
        out = model(torch.from_numpy(x), output_hidden_states=True)
    main = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return main.numpy(), [h.numpy() for h in out.hidden_states]


def features(config: Any, batch: int = 2, seed: int = 0) -> np.ndarray:
    """Random `(B, T, F)` features with the spread of normalised log-mels (std about 0.5)."""
    rng = np.random.default_rng(seed)
    shape = (batch, config.max_length, config.num_mel_bins)
    return (0.5 * rng.standard_normal(shape)).astype(np.float32)
