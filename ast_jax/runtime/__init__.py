"""Execution on devices: the data-parallel mesh and shardings, and batching strategies. Imports
nothing above the model."""
