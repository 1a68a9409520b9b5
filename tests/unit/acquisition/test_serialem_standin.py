"""The stand-in ``serialem`` module behaves as SerialEM's documents and source say the real one
does (called, as the driver calls it, in a bridge process through SerialEMClient).

References: SerialEM help ``about_scripts.htm`` ("Scripting with Python", "Running scripts in
an externally run Python"), ``script_commands.htm`` (one entry per command), and the module's
source, mastcu/PythonModule ``SerialEMModule.cpp`` / ``PySEMSocket.cpp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acquisition.driver import DriverError
from acquisition.serialem.client import SerialEMClient
from support.fake_serialem import MODULE_PATH, FakeSerialEM, free_port
from support.system import fast_settings


@pytest.fixture
def sem(tmp_path: Path) -> FakeSerialEM:
    return FakeSerialEM(tmp_path, fast_settings())


async def connected(sem: FakeSerialEM) -> SerialEMClient:
    client = SerialEMClient(f"127.0.0.1:{sem.port}", timeout_s=10, module_path=str(MODULE_PATH))
    await client.start()
    await client.call("ConnectToSEM", sem.port, "127.0.0.1")
    return client


@pytest.fixture
async def client(sem: FakeSerialEM) -> AsyncIterator[SerialEMClient]:
    with sem:
        c = await connected(sem)
        yield c
        await c.close()


async def test_return_shapes_follow_the_help(sem: FakeSerialEM, client: SerialEMClient) -> None:
    # about_scripts.htm: "None, if it sets no reported values, a single value if there is one
    # reported value, or a tuple ... Numeric values are returned as floating point"
    xyz = await client.call("ReportStageXYZ")
    assert isinstance(xyz, tuple) and len(xyz) == 3 and all(isinstance(v, float) for v in xyz)
    assert await client.call("MoveStageTo", 12.5, -3) is None
    assert (await client.call("ReportStageXYZ"))[:2] == (12.5, -3.0)
    assert await client.call("IsVersionAtLeast", "40000") == 1.0  # one value: a float
    assert isinstance(await client.call("ReportCameraName", 0), str)
    previous = await client.call("SetLowDoseMode", 0)  # reports the previous state
    assert previous == 1.0 and (await client.call("ReportLowDose"))[0] == 0.0


async def test_a_failed_command_is_semerror_with_serialems_text(
    sem: FakeSerialEM, client: SerialEMClient
) -> None:
    # about_scripts.htm "Errors and exceptions": an error within a SerialEM operation raises
    # SEMerror; str(err) is SerialEM's message. MacroProcessor.cpp CheckAndConvertLDAreaLetter:
    await client.call("SetLowDoseMode", 0)
    with pytest.raises(DriverError, match="You must be in low dose mode") as caught:
        await client.call("GoToLowDoseArea", "R")
    assert not caught.value.fatal and client.alive
    await client.call("SetLowDoseMode", 1)
    with pytest.raises(DriverError, match="one of V, F, T, R, or S"):
        await client.call("GoToLowDoseArea", "Q")
    # GoToImagingState reports a failure instead of raising (script_commands.htm)
    assert await client.call("GoToImagingState", "no such state") == 1.0
    assert await client.call("GoToImagingState", "Atlas") == 0.0


async def test_wrong_argument_types_are_type_errors(
    sem: FakeSerialEM, client: SerialEMClient
) -> None:
    # about_scripts.htm: "string arguments must be strings, integer arguments must be
    # integers ... A failure to have the right types will lead to an exception"; keys from
    # MacroMasterList.h: IsVersionAtLeast "Ss", ReportSlotStatus "I"
    with pytest.raises(DriverError, match="TypeError"):
        await client.call("IsVersionAtLeast", 40000)


async def test_version_differences_smartscope_works_around(tmp_path: Path) -> None:
    # ReportSlotStatus: one value before 4.1, (status, name) since (script_commands.htm;
    # SmartScope serialem_interface.loadGrid); ReportLastFrameFile: a tuple since 4.0
    for version, shape in ((30900, float), (40100, tuple)):
        with FakeSerialEM(tmp_path / str(version), fast_settings(), version=version) as sem:
            client = await connected(sem)
            status = await client.call("ReportSlotStatus", 1)
            assert isinstance(status, shape), (version, status)
            if shape is tuple:
                assert status == (1.0, "grid01")
            await client.close()


async def test_external_control_rules(sem: FakeSerialEM, tmp_path: Path) -> None:
    # about_scripts.htm: the first command starts external control; a busy SerialEM raises
    # SEMmoduleError "is now busy"/"busy and not ready" (SerialEMModule.cpp
    # CheckInitialization); Exit(1) from an external Python raises nothing; STOP raises
    # SEMexited "User STOP".
    with sem:
        sem.busy = True
        refused = await connected(sem)
        with pytest.raises(DriverError, match="SerialEM is busy and not ready to run a script"):
            await refused.call("ReportStageXYZ")
        assert not refused.alive
        await refused.close()
        sem.busy = False
        first = await connected(sem)
        await first.call("ReportStageXYZ")
        assert sem.external_control
        second = await connected(sem)  # one client at a time (PythonServer.cpp)
        with pytest.raises(DriverError, match="busy"):
            await second.call("ReportStageXYZ")
        await second.close()
        assert await first.call("Exit", 1) is None and not sem.external_control
        await first.call("ReportStageXYZ")  # takes control again
        sem.press_stop()
        with pytest.raises(DriverError, match="operator pressed STOP") as caught:
            await first.call("ReportStageXYZ")
        assert caught.value.fatal
        await first.close()


async def test_connect_to_sem_binds_the_first_port_for_the_process(tmp_path: Path) -> None:
    # PySEMSocket::InitializeSocket: port and address are taken on the first call only
    with FakeSerialEM(tmp_path / "a", fast_settings()) as a:
        client = await connected(a)
        await client.call("ConnectToSEM", free_port(), "127.0.0.1")  # ignored: already bound
        await client.call("Echo", "still here")
        assert a.scope.log == ["still here"]
        await client.close()


async def test_nothing_listening_is_a_module_error(tmp_path: Path) -> None:
    # PySEMSocket::OpenServerSocket: "Error connecting to Server socket at IP … on port …"
    sem = FakeSerialEM(tmp_path, fast_settings(), listen=False)
    client = SerialEMClient("x", timeout_s=10, module_path=str(MODULE_PATH))
    await client.start()
    with pytest.raises(DriverError, match="Error connecting to Server socket at IP 127.0.0.1"):
        await client.call("ConnectToSEM", sem.port, "127.0.0.1")
    await client.close()
