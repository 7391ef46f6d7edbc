"""python -m pytactic: see pytactic.cli."""

import sys

from .cli import main

sys.exit(main())
