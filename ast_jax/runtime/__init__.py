"""Execution on devices: the data-parallel mesh and shardings, batching strategies, multi-process
runs and the persistent compilation cache. Imports nothing above the model."""
