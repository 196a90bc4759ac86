"""What the feature extractor returns: a dict of arrays with attribute access and transformers'
`return_tensors` conversions.

`BatchFeature` is a `dict` (``batch["input_values"]``) whose keys also read as attributes
(``batch.input_values``), as transformers' `BatchFeature`. `return_tensors` picks the array type:
None or ``"np"`` for NumPy, ``"jax"`` for `jax.Array` and ``"pt"`` for `torch.Tensor` (when torch
is installed; it is imported only for that request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["TENSOR_TYPES", "BatchFeature", "as_tensors"]

TENSOR_TYPES = ("np", "jax", "pt")


def _tensor_type(tensor_type: Any) -> str | None:
    """``tensor_type`` as one of `TENSOR_TYPES` (transformers' `TensorType` members are strings)."""
    if tensor_type is None:
        return None
    name = str(getattr(tensor_type, "value", tensor_type))
    if name not in TENSOR_TYPES:
        raise ValueError(f"return_tensors must be None or one of {TENSOR_TYPES}, got {name!r}")
    return name


def _stacked(key: str, value: Any) -> np.ndarray:
    """``value`` as one NumPy array; a ragged batch (rows of different lengths) is an error."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Sequence) and len(value) and not isinstance(value[0], (int, float)):
        lengths = {len(row) for row in value}
        if len(lengths) > 1:
            raise ValueError(
                f"cannot make one tensor of {key!r}: its rows have lengths {sorted(lengths)}; pad "
                "them to one length (padding=True or 'max_length'), or pass return_tensors=None "
                "for a list of arrays"
            )
        return np.stack([np.asarray(row) for row in value])
    return np.asarray(value)


def as_tensors(key: str, value: Any, tensor_type: str | None) -> Any:
    """``value`` (an array or a batch of rows) as one array of ``tensor_type``.

    float64 becomes float32, as transformers' conversion does.

    Raises:
      ValueError: an unknown tensor type or a ragged batch.
      ImportError: ``"pt"`` without torch.
    """
    tensor_type = _tensor_type(tensor_type)
    array = _stacked(key, value)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if tensor_type in (None, "np"):
        return array
    if tensor_type == "jax":
        import jax.numpy as jnp

        return jnp.asarray(array)
    try:
        import torch
    except ImportError as error:
        raise ImportError('return_tensors="pt" needs PyTorch (pip install torch)') from error
    return torch.from_numpy(np.ascontiguousarray(array))


class BatchFeature(dict):
    """A dict of model inputs whose keys read as attributes too, as transformers' `BatchFeature`.

    Args:
      data: the features, e.g. ``{"input_values": ..., "attention_mask": ...}``.
      tensor_type: None to keep the values as given; ``"np"``, ``"jax"`` or ``"pt"`` to turn each
        value (an array or a batch of equal-length rows) into one array of that type.

    Raises:
      ValueError: an unknown tensor type, or rows of different lengths with a tensor type.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, tensor_type: Any = None) -> None:
        super().__init__(data or {})
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchFeature has no key or attribute {name!r}") from None

    def convert_to_tensors(self, tensor_type: Any = None) -> BatchFeature:
        """Turns every value into one array of ``tensor_type`` in place (None: no change).

        Returns:
          ``self``.
        """
        if _tensor_type(tensor_type) is not None:
            for key, value in self.items():
                self[key] = as_tensors(key, value, tensor_type)
        return self
