"""A module test kernels preload that makes a forbidden system call as it is imported."""

from __future__ import annotations

import ctypes

ctypes.CDLL(None, use_errno=True).ptrace(0, 0, 0, 0)  # PTRACE_TRACEME
