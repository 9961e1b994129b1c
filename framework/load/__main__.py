"""``python -m framework.load``: the load generator's command line (``framework load``)."""

import sys

from .cli import main

sys.exit(main())
