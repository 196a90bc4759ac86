"""Checkpoints: ast-jax and Hugging Face directories, hub ids, original `.pth` files (read without
running pickled code), key mappings between them, and the bundled models."""
