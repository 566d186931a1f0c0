"""``python -m voxline``: the ``voxline`` command."""

import sys

from .cli import main

sys.exit(main())
