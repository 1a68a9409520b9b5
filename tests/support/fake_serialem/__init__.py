"""A fake SerialEM (server side) and the stand-in ``serialem`` module's location, for tests.

The driver under test imports ``serialem`` from :data:`MODULE_PATH` (the stand-in module), in
its bridge process; the stand-in talks to :class:`FakeSerialEM` over a loopback socket.
"""

from pathlib import Path

from support.fake_serialem.server import SHARE_WINDOWS, FakeSerialEM, free_port

MODULE_PATH = Path(__file__).resolve().parents[1] / "serialem_module"
"""The folder holding the stand-in ``serialem`` module (put it on ``sys.path``)."""

__all__ = ["MODULE_PATH", "SHARE_WINDOWS", "FakeSerialEM", "free_port"]
