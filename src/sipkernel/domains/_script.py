"""The kernel's ``__main__`` script, made importable inside a domain.

Functions and contracts defined in the script a kernel runs from live in its
``__main__``; a domain finds them by running the script again as
``__mp_main__`` (multiprocessing's convention), whose ``if __name__ ==
"__main__":`` block then stays idle. The zygote of ``process`` domains does it
once, for all; a ``sandbox`` domain does it inside itself, when first asked.
"""

from __future__ import annotations

import runpy
import sys
import traceback

from .._core._codec import codec_for, warm_transfer_types
from .._core._contract import Contract


def load_main(path: str) -> str | None:
    """Run the kernel's script as ``__mp_main__``; the import error, if any."""
    if "__mp_main__" in sys.modules:
        return None
    try:
        namespace = runpy.run_path(path, run_name="__mp_main__")
    except BaseException as exc:  # reported to the kernel, not raised here
        return "".join(traceback.format_exception_only(exc)).strip()
    module = type(sys)("__mp_main__")
    module.__dict__.update(namespace)
    sys.modules["__mp_main__"] = module
    sys.modules["__main__"] = module
    warm_codecs()
    return None


def warm_codecs() -> None:
    """Build the codec of every contract known so far (they are costly to build), and
    the type information endpoints in messages need."""
    for contract in Contract.registered():
        codec_for(contract)
    warm_transfer_types()
