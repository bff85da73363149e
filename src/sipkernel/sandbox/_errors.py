"""Errors of the sandbox rung, in sipkernel's one hierarchy."""

from __future__ import annotations

from .._core._errors import DomainError


class SandboxError(DomainError):
    """A sandbox could not be built or has failed."""


class SandboxUnavailable(SandboxError):
    """This machine cannot provide the sandbox the policy asks for.

    The message names the cause (for example user namespaces disabled) and
    the fix.
    """


class SandboxSetupError(SandboxError):
    """One step of building the sandbox failed; ``step`` names it."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"sandbox setup failed at step {step!r}: {detail}")
        self.step = step
        self.detail = detail
