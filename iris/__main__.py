"""``python -m iris``: the ``iris`` command line (see :mod:`iris.cli`)."""

from __future__ import annotations

import sys

from iris.cli import main

sys.exit(main())
