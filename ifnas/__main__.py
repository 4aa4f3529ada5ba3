"""`python -m ifnas` is the `ifnas` command."""

import sys

from ifnas.cli import main

sys.exit(main())
