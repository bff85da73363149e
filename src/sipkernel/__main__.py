"""``python -m sipkernel``: the same as the ``sipkernel`` command."""

from ._cli import run

run()
