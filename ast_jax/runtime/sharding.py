"""Data parallelism: a one-axis device mesh, params replicated, batches split over devices.

Inference needs no communication between examples, so the layout is the simplest there is: a
`Mesh` with one axis, ``"data"``, over the local devices; every device holds a full copy of the
params and ``B / num_devices`` rows of each batch. `AudioClassifier` uses it on every run (a mesh
of one device on a single-device host), so the sharded and single-device paths are one code path.

Multi-host (TPU pods, multi-node GPU): call ``jax.distributed.initialize()`` at start-up in each
process, then give each process its own share of the inputs with `process_shard` and let it build
its classifier over its local devices (the default here). Each host classifies its share on its
own chips; nothing crosses hosts, and each host writes its own results.

Shape legend: B batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "data_mesh",
    "gather",
    "global_batch",
    "padded_batch_size",
    "process_shard",
    "replicate",
]

DATA_AXIS = "data"
T = TypeVar("T")


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (``"data"``) over ``devices``, by default this process's local devices."""
    devices = jax.local_devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the ``"data"`` axis, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put a copy of every leaf of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def padded_batch_size(batch_size: int, mesh: Mesh) -> int:
    """``batch_size`` rounded up to a multiple of the device count, so every device gets rows.

    Raises:
      ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return -(-batch_size // mesh.size) * mesh.size


def process_shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items`` in a multi-host run (every item for a single process)."""
    return list(items[jax.process_index() :: jax.process_count()])


def global_batch(tree: Any, mesh: Mesh | None) -> Any:
    """This process's rows of a batch (host arrays) as one global batch split over ``mesh``.

    With several processes each passes its own consecutive rows (its share of the global batch, in
    process order); the leaves become global `jax.Array`s whose leading axis spans all of them.
    With no mesh the batch goes to the default device.
    """
    if mesh is None:
        return jax.device_put(tree)
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), tree)


def gather(array: jax.Array) -> np.ndarray:
    """A (possibly multi-process) array as one host array, the same on every process."""
    if jax.process_count() == 1:
        return np.asarray(array)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
