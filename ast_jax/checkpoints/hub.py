"""Where a checkpoint lives: a local directory as it is, or a Hugging Face hub id as a snapshot.

The resolution itself is `ast_jax.hub.resolve` (below every floor, so that the config and the
feature extractor can read hub ids too); this module keeps its old import path.
"""

from __future__ import annotations

from ast_jax.hub import is_offline, resolve

__all__ = ["is_offline", "resolve"]
