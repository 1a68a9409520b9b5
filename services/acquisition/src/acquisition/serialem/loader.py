"""Loading a grid from a Thermo Fisher autoloader through SerialEM, with slot checks.

``ReportSlotStatus N`` says whether cassette slot N holds a cartridge (-1 error, 0 empty,
1 occupied); ``LoadCartridge N`` moves it onto the stage, after which the slot reads empty.
A slot that reads empty before loading may hold the grid already on the stage (a run
restarted on the same grid): SerialEM 4.3 and later say which slot is on the stage
(``ReportLoadedSlot``); with an older SerialEM the driver trusts the slot it loaded itself, and
otherwise takes the grid to be on the stage and says so in the log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acquisition.driver import DriverError
from acquisition.serialem.connection import first, slot_status
from proto.messages import GridSpec

if TYPE_CHECKING:
    from acquisition.serialem.scope import SerialEMMicroscope

log = logging.getLogger(__name__)

REPORTS_LOADED_SLOT = 40300
"""``ReportLoadedSlot`` came with SerialEM 4.3."""


class Autoloader:
    def __init__(self, scope: SerialEMMicroscope) -> None:
        self.scope = scope
        self.on_stage: int | None = None
        """The slot this driver last loaded onto the stage."""

    async def load(self, grid: GridSpec) -> None:
        """Put the cartridge of ``grid`` (its cassette position) on the stage.

        Raises:
            DriverError: the position is beyond the autoloader, the slot is empty or cannot
                be read, or the cartridge did not leave its slot.
        """
        scope, slot = self.scope, grid.position
        slots = scope.microscope.autoloader_slots
        if slot > slots:
            raise DriverError(
                f"grid {grid.name} is at cassette position {slot}, but the autoloader of "
                f"{scope.name} has {slots} slots"
            )
        status, name = slot_status(await scope.sem("ReportSlotStatus", slot))
        label = f"slot {slot}" + (f" ('{name}')" if name else "")
        if status < 0:
            raise DriverError(f"SerialEM could not read autoloader {label} for grid {grid.name}")
        if status == 1:
            scope.checkpoint()
            await scope.sem("Echo", f"Gridpilot: loading grid {grid.name} from {label}")
            await scope.sem("SetColumnOrGunValve", 0)
            await scope.sem("LoadCartridge", slot, long=True)
            after, _ = slot_status(await scope.sem("ReportSlotStatus", slot))
            if after != 0:
                raise DriverError(
                    f"the cartridge of grid {grid.name} did not leave autoloader {label} "
                    f"(the slot reads {'occupied' if after == 1 else 'unreadable'})"
                )
            self.on_stage = slot
        elif not await self._already_on_stage(slot):
            raise DriverError(
                f"autoloader {label} is empty: grid {grid.name} is not in the cassette"
            )
        await scope.sem("SetColumnOrGunValve", 1)

    async def _already_on_stage(self, slot: int) -> bool:
        scope = self.scope
        if scope.version >= REPORTS_LOADED_SLOT:
            loaded = first(await scope.sem("ReportLoadedSlot"))
            self.on_stage = int(float(loaded)) if loaded is not None else None
            return self.on_stage == slot
        if self.on_stage == slot:
            return True
        log.warning(
            "%s: autoloader slot %d reads empty; taking its grid to be on the stage already "
            "(SerialEM before 4.3 cannot say which cartridge is loaded)",
            scope.name,
            slot,
        )
        return True
