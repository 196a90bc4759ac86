"""The ``ast-jax`` command line (entry point: `ast_jax.cli.main.main`). Nothing in the library
imports it."""
