"""The model: Flax modules, attention kernels, params trees, position tables, attention maps and
score functions. Imports the front end and the base modules only.

The modules and params helpers are also importable from here (``from ast_jax.model import
ASTModel``), as they were when this was one module.
"""

from __future__ import annotations

from ast_jax.exports import lazy_getattr

_EXPORTS = {
    "ASTClassifierOutput": "ast_jax.model.modules",
    "ASTForAudioClassification": "ast_jax.model.modules",
    "ASTModel": "ast_jax.model.modules",
    "ASTModelOutput": "ast_jax.model.modules",
    "abstract_params": "ast_jax.model.params",
    "build_model": "ast_jax.model.params",
    "check_params": "ast_jax.model.params",
}

__all__ = [
    "ASTClassifierOutput",
    "ASTForAudioClassification",
    "ASTModel",
    "ASTModelOutput",
    "abstract_params",
    "build_model",
    "check_params",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
