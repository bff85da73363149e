"""``python -m sipkernel``: the same as the ``sipkernel`` command."""

import sys

from ._cli import main

sys.exit(main())
