"""The load generator: ``framework load URL`` from the shell, ``run(Settings(url))`` from Python.

Closed loop (each connection sends its next request when the previous answer is in) or open
loop (``rate=``, latency counted from when each request was due), over the package's own TLS
and HTTP/1.1 parts, with an HDR-style histogram; results are JSON files that
``framework load compare`` sets side by side.
"""

from .histogram import Histogram
from .runner import run
from .settings import ERROR_KINDS, Settings

__all__ = ["ERROR_KINDS", "Histogram", "Settings", "run"]
