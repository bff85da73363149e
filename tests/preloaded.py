"""A module test kernels preload: it records which thread imported it, and where."""

from __future__ import annotations

import os
import threading

IMPORTED_BY = threading.current_thread().name
IMPORTED_IN = os.getpid()
