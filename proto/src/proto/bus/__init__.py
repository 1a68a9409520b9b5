"""The bus: one protocol, two implementations (``MemoryBus`` here; ``AmqpBus`` in
``proto.bus.amqp``, imported only where RabbitMQ is used)."""

from proto.bus.base import Bus, BusObserver, DeadLetter, Subscription
from proto.bus.memory import MemoryBus

__all__ = ["Bus", "BusObserver", "DeadLetter", "MemoryBus", "Subscription"]
