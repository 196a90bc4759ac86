"""Several JAX processes as one program: starting `jax.distributed` and the global mesh.

On TPU pods and SLURM or MPI clusters JAX finds the coordinator, the process count and this
process's id by itself; elsewhere they are given explicitly. Every process then sees every device
of the cluster (`jax.devices()`) and a batch is split over all of them (`global_mesh`); each
process feeds only the rows its own devices hold.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh

from ast_jax.runtime.sharding import data_mesh

__all__ = ["global_mesh", "initialize"]


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to a multi-process JAX run; call it before any other JAX call.

    Args:
      coordinator: ``host:port`` of process 0's coordination service; None lets JAX detect the
        cluster (TPU pods, SLURM, Open MPI) and fails where it cannot.
      num_processes: the number of processes; None: detected.
      process_id: this process's index in ``[0, num_processes)``; None: detected.

    Raises:
      ValueError: explicit values that are incomplete or out of range.
    """
    explicit = (coordinator, num_processes, process_id)
    if any(value is not None for value in explicit) and None in explicit:
        raise ValueError(
            "give all of coordinator, num_processes and process_id, or none to detect the cluster"
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id {process_id} is not in [0, {num_processes})")
    # Collectives between CPU devices of different processes (no effect on GPUs and TPUs).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)


def global_mesh() -> Mesh:
    """The one-axis ``"data"`` mesh over every device of every process, in process order."""
    return data_mesh(jax.devices())
