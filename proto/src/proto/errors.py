"""The one exception tree of Gridpilot.

``ScreeningError`` is the root. Its two branches tell a consumer what to do with the message
that raised:

* ``PermanentError`` — retrying cannot help (bad input, corrupt file, illegal transition):
  the bus rejects the message without requeue, so it is dead-lettered at once with the reason.
* ``TransientError`` — the world may change (broker hiccup, busy lease, slow disk): the bus
  requeues and the quorum delivery limit (5) caps the retries before dead-lettering.
"""

from __future__ import annotations


class ScreeningError(Exception):
    """Root of every error Gridpilot raises on purpose."""


class PermanentError(ScreeningError):
    """Retrying the same input cannot succeed; dead-letter at once."""


class TransientError(ScreeningError):
    """May succeed later; requeue, bounded by the delivery limit."""


class MalformedMessage(PermanentError):
    """A message body that does not parse as JSON or does not validate as its model."""


class CorruptImage(PermanentError):
    """An image file that cannot be read (truncated, bad header, wrong mode).

    Attributes:
        path: the file that failed.
        reason: what was wrong with it, in words an operator can act on.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"corrupt image {path}: {reason}")
        self.path = path
        self.reason = reason


class InvalidTransition(PermanentError):
    """A run command that is not allowed in the run's current state."""


class NotFound(PermanentError):
    """A referenced entity (session, run, microscope, target) does not exist."""


class LeaseBusy(TransientError):
    """The microscope lease is held by someone else.

    Attributes:
        microscope_id: the microscope asked for.
        holder: who holds it, as far as known (``None`` when the broker does not say).
    """

    def __init__(self, microscope_id: str, holder: object | None = None) -> None:
        describe = getattr(holder, "describe", None)
        who = f" by {describe() if callable(describe) else holder}" if holder is not None else ""
        super().__init__(f"microscope {microscope_id} is locked{who}")
        self.microscope_id = microscope_id
        self.holder = holder


class LeaseLost(ScreeningError):
    """The lease this process held is gone (released by force, broker closed, heartbeat)."""


class BusUnavailable(TransientError):
    """The message broker cannot be reached or refused a publish."""
