"""Process-wide settings of a long-running service."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Put what start-up built (modules, schemas, compiled queries, templates: hundreds of
    thousands of objects that live as long as the process) out of the cycle collector's reach.

    Python's oldest-generation collections walk every tracked object; with that heap each
    took 250–300 ms on the event loop, every few hundred requests, and made the p95 of pages
    and routes (benchmarks/scale.py). After ``gc.freeze()`` only what requests allocate is
    walked. Call once the service has started (its lifespan is up); objects frozen that later
    become cyclic garbage are not reclaimed, so do not call it per request or per test."""
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen: %d objects out of the collector's reach", gc.get_freeze_count())
