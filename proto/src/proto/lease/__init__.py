"""The microscope lease: ``LeaseManager`` protocol, in-memory registry (``AmqpLeases`` lives in
``proto.lease.amqp``)."""

from proto.lease.base import HeldLease, LeaseManager
from proto.lease.memory import MemoryLeases

__all__ = ["HeldLease", "LeaseManager", "MemoryLeases"]
