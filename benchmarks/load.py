"""``python -m benchmarks.load``: the same as ``framework load`` (the load generator now ships in
the package as ``framework.load``); kept so that existing scripts still run."""

from __future__ import annotations

import sys

from framework.load.cli import main, parse_duration, parse_size, settings_from_args
from framework.load.runner import run

__all__ = ["main", "parse_duration", "parse_size", "run", "settings_from_args"]

if __name__ == "__main__":
    sys.exit(main())
