"""``python -m ast_jax.cli``: the ``ast-jax`` command line."""

import sys

from ast_jax.cli.main import main

sys.exit(main())
