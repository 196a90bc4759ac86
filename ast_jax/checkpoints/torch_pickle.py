"""A torch-free, restricted reader for PyTorch `torch.save` ZIP checkpoints.

`pytorch_model.bin` is a ZIP archive with one top folder holding `data.pkl` (a pickled state dict),
`data/<key>` (raw little-endian storage bytes) and `byteorder`. Unpickling normally runs arbitrary
code; this reader resolves only the globals a tensor state dict needs (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types) and refuses everything else, then
builds NumPy arrays from each tensor's storage, offset, size and stride (docs/checkpoints.md,
Restricted unpickler).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["UnsafePickleError", "read_torch_zip"]

_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global outside the tensor allow-list (it may try to run code)."""


class _StorageType:
    """Stands in for a `torch.*Storage` class: only its element dtype matters."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor_v2(
    storage: np.ndarray,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> np.ndarray:
    """The array torch would view from `storage` at `storage_offset` with `size` and `stride`."""
    del requires_grad, backward_hooks, metadata  # autograd bookkeeping, meaningless for arrays
    extent = sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else -1
    if storage_offset < 0 or min(stride, default=0) < 0 or storage_offset + extent >= storage.size:
        raise ValueError(
            f"tensor view (offset {storage_offset}, size {size}, stride {stride}) lies outside "
            f"its storage of {storage.size} elements"
        )
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=size,
        strides=[s * itemsize for s in stride],
        writeable=False,
    )
    return np.array(view)  # copy: contiguous, writeable, independent of the storage buffer


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafePickleError(
            f"refusing to unpickle global {module}.{name}: a weights file may only contain "
            "tensors (allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
            "torch.*Storage)"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        # ('storage', storage type, key, location, numel); location (e.g. 'cuda:0') is ignored.
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"persistent id names a non-storage type: {storage_type!r}")
        if key not in self._storages:
            data = self._archive.read(f"{self._prefix}data/{key}")
            storage = np.frombuffer(data, dtype=storage_type.dtype)
            if storage.size != numel:
                raise ValueError(f"storage {key}: expected {numel} elements, found {storage.size}")
            self._storages[key] = storage
        return self._storages[key]


def read_torch_zip(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a `torch.save` ZIP state dict into NumPy arrays without torch and without running code.

    Args:
        path: a `pytorch_model.bin` / `.pth` file written by torch >= 1.6.

    Returns:
        name -> array (bfloat16 tensors come back as `ml_dtypes.bfloat16` arrays).

    Raises:
        UnsafePickleError: the pickle references a global outside the allow-list.
        ValueError: not a ZIP checkpoint, big-endian data, or a malformed state dict.
    """
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a torch ZIP checkpoint (legacy pre-1.6 files are unsupported)"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist():
            if archive.read(f"{prefix}byteorder").strip() != b"little":
                raise ValueError(f"{path}: big-endian checkpoints are unsupported")
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix)
        state_dict = unpickler.load()
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state_dict.items()
    ):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(state_dict).__name__}")
    return dict(state_dict)
