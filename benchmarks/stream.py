"""Live processing on RabbitMQ with real workers: a 600 movies/h stream and 1 → 2 worker scaling.

Run ``uv run --frozen python benchmarks/stream.py [--quick] [--minutes M] [--rate R]
[--size S] [--frames F] [--pool P] [--backlog B]``; prints a table and writes
``benchmarks/results/stream.json``. See ``benchmarks/README.md`` (section *stream*).

A pool of simulated movies is written once to a temporary directory; every published
``ExposureAcquired`` names a fresh hard link to one of them (its own exposure id, so the PNGs
processing writes beside the movie do not collide). ``python -m processing`` workers run as
child processes on a unique namespace (``--fft-threads`` each during the stream, one each
for the scaling runs); the benchmark measures
publish (= file ready) → ``ExposureProcessed`` received, samples the depth of
``processing.images`` from the management API, then times a backlog drained by 2 and by 1
worker. Everything it created (processes, queues, exchanges, files) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

# This folder holds processing.py, which would shadow the processing service: keep it off.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import httpx  # noqa: E402
import psutil  # noqa: E402

from acquisition.physics import simulate_movie, write_simulated_mrc  # noqa: E402
from proto import messages as m  # noqa: E402
from proto.bus.amqp import AmqpBus  # noqa: E402
from proto.settings import AmqpSettings  # noqa: E402
from proto.topology import EVENTS, PROCESSING_IMAGES, transient_queue  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"
TARGET_MEDIAN_S = 6.0
TARGET_SCALING = 1.8
PIXEL_A = 1.0
DOSE_PER_FRAME = 1.0
MOVIE_PEAK_BYTES_PER_PX = 4.4
"""A worker's own memory per movie pixel: the frame transforms it keeps between movies (2.9 GB
for 40 × 4096²); the movie itself (8-bit counts, 1 byte a pixel) is mapped from the page
cache, which the pool shares."""

log = logging.getLogger("bench.stream")


# --- results inbox ---------------------------------------------------------------------------


@dataclass
class Sent:
    exposure_id: uuid.UUID
    phase: str
    movie: int
    published: float  # perf_counter just before publishing (the file is already in place)
    received: float | None = None
    service_s: float | None = None  # the worker's own time (ExposureProcessed.seconds)
    failed: str | None = None

    @property
    def latency(self) -> float | None:
        return None if self.received is None else self.received - self.published


@dataclass
class Inbox:
    """Results by exposure id; ``waiters`` complete when every id of a batch has arrived."""

    sent: dict[uuid.UUID, Sent] = field(default_factory=dict)
    unknown: int = 0
    duplicates: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, message: m.Message) -> None:
        now = time.perf_counter()
        if isinstance(message, m.ExposureProcessed):
            key, service, failed = message.exposure_id, message.seconds, None
        elif isinstance(message, m.ImageFailed):
            key, service, failed = message.image_id, None, message.reason
        else:
            return
        entry = self.sent.get(key)
        if entry is None:
            self.unknown += 1
            return
        if entry.received is not None:
            self.duplicates += 1
            return
        entry.received, entry.service_s, entry.failed = now, service, failed
        self._changed.set()

    def outstanding(self, ids: list[uuid.UUID] | None = None) -> int:
        pool = self.sent.values() if ids is None else (self.sent[i] for i in ids)
        return sum(1 for s in pool if s.received is None)

    async def wait_all(self, ids: list[uuid.UUID], timeout: float) -> bool:
        """Until every id in ``ids`` has a result (event-driven), or ``timeout``; True if all."""
        deadline = time.monotonic() + timeout
        while self.outstanding(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
        return True


# --- workers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    proc: asyncio.subprocess.Process
    port: int
    logfile: Path

    def cpu_s(self) -> float:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return math.nan


async def start_worker(namespace: str, data_root: Path, index: int, fft_threads: int) -> Worker:
    port = free_port()
    env = dict(os.environ)
    env.update(
        AMQP_NAMESPACE=namespace,
        PROCESSING_FFT_THREADS=str(fft_threads),
        PROCESSING_METRICS_PORT=str(port),
        PROCESSING_DATA_ROOT=str(data_root),
        PYTHONUNBUFFERED="1",
    )
    logfile = data_root.parent / f"worker-{index}.log"
    with logfile.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processing",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return Worker(proc, port, logfile)


async def stop_worker(w: Worker, timeout: float = 15) -> None:
    if w.proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        w.proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await w.proc.wait()
    except TimeoutError:
        log.warning("worker %d ignored SIGTERM for %g s; killing it", w.proc.pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            w.proc.kill()
        await w.proc.wait()


def check_alive(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.returncode is not None:
            tail = w.logfile.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"worker {w.proc.pid} exited ({w.proc.returncode}):\n{tail}")


# --- management API --------------------------------------------------------------------------


class Management:
    def __init__(self, settings: AmqpSettings, namespace: str) -> None:
        self.namespace = namespace
        self.vhost = quote(settings.vhost, safe="")
        self.client = httpx.AsyncClient(
            base_url=settings.management_url.rstrip("/") + "/api",
            auth=settings.credentials,
            timeout=10,
        )
        self.queue = f"{namespace}.{PROCESSING_IMAGES.name}"

    async def depth(self) -> dict[str, int]:
        r = await self.client.get(f"/queues/{self.vhost}/{quote(self.queue, safe='')}")
        r.raise_for_status()
        q = r.json()
        return {
            k: int(q.get(k) or 0)
            for k in ("messages", "messages_ready", "messages_unacknowledged", "consumers")
        }

    async def wait_consumers(self, n: int, workers: list[Worker], timeout: float) -> None:
        """Poll the consumer count (there is no broker event for it without the event-exchange
        plugin) until ``n`` workers consume, a worker dies, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while (await self.depth())["consumers"] < n:
            check_alive(workers)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} consumers not attached after {timeout:g} s")
            await asyncio.sleep(0.2)

    async def purge(self) -> None:
        await self.client.delete(f"/queues/{self.vhost}/{quote(self.queue, safe='')}/contents")

    async def delete_namespace(self) -> list[str]:
        """Delete whatever queue or exchange of the namespace is left; returns their names."""
        gone: list[str] = []
        prefix = f"{self.namespace}."
        for kind in ("queues", "exchanges"):
            r = await self.client.get(f"/{kind}/{self.vhost}")
            r.raise_for_status()
            for item in r.json():
                name = str(item.get("name", ""))
                if name.startswith(prefix):
                    await self.client.delete(f"/{kind}/{self.vhost}/{quote(name, safe='')}")
                    gone.append(name)
        return gone


@dataclass
class Sampler:
    """Queue depth every ``interval`` s (management stats refresh every 5 s by default) and
    the benchmark's own count of published-but-unanswered messages at the same instant."""

    mgmt: Management
    inbox: Inbox
    t0: float
    interval: float
    samples: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "stream"

    async def run(self) -> None:
        nxt = time.perf_counter()
        while True:
            d: dict[str, Any]
            try:
                d = dict(await self.mgmt.depth())
            except httpx.HTTPError as exc:
                d = {"error": repr(exc)}
            self.samples.append(
                {
                    "t": round(time.perf_counter() - self.t0, 3),
                    "phase": self.phase,
                    **d,
                    "outstanding": self.inbox.outstanding(),
                    "loadavg1": round(os.getloadavg()[0], 2),
                }
            )
            nxt += self.interval
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))


# --- movies ----------------------------------------------------------------------------------


def make_pool(folder: Path, n: int, size: int, frames: int, seed0: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for k in range(n):
        t = time.perf_counter()
        movie, _truth = simulate_movie(
            seed0 + k,
            shape=(size, size),
            n_frames=frames,
            pixel_size_a=PIXEL_A,
            tier="realistic",
            dose_per_frame_e_per_a2=DOSE_PER_FRAME,
            fft_workers=2,
        )
        path = write_simulated_mrc(
            folder / f"movie-{k}.mrc", movie, pixel_size_a=PIXEL_A, dose_e_per_a2=DOSE_PER_FRAME
        )
        del movie
        paths.append(path)
        log.info(
            "pool movie %d/%d (%d × %d²) in %.1f s", k + 1, n, frames, size, time.perf_counter() - t
        )
    return paths


@dataclass
class Publisher:
    bus: AmqpBus
    inbox: Inbox
    pool: list[Path]
    exposures: Path
    size: int
    frames: int
    run_id: uuid.UUID = field(default_factory=uuid.uuid4)
    grid_id: uuid.UUID = field(default_factory=uuid.uuid4)
    count: int = 0

    async def one(self, phase: str, movie: int | None = None) -> uuid.UUID:
        k = self.count % len(self.pool) if movie is None else movie
        self.count += 1
        exposure_id = uuid.uuid4()
        path = self.exposures / f"{phase}-{exposure_id.hex}.mrc"
        os.link(self.pool[k], path)
        shape = (self.frames, self.size, self.size)
        message = m.ExposureAcquired(
            message_id=uuid.uuid4(),
            run_id=self.run_id,
            grid_id=self.grid_id,
            hole_id=uuid.uuid4(),
            exposure_id=exposure_id,
            movie=m.ImageRef(path=str(path), pixel_size_a=PIXEL_A, shape=shape),
            n_frames=self.frames,
            dose_e_per_a2=DOSE_PER_FRAME * self.frames,
        )
        self.inbox.sent[exposure_id] = Sent(exposure_id, phase, k, time.perf_counter())
        await self.bus.publish(message)
        return exposure_id


# --- phases ----------------------------------------------------------------------------------


async def stream(
    pub: Publisher,
    inbox: Inbox,
    sampler: Sampler,
    n: int,
    interval: float,
    drain_s: float,
    mgmt: Management,
    workers: list[Worker],
) -> dict[str, Any]:
    cpu0 = [w.cpu_s() for w in workers]
    sampler.phase = "stream"
    ids: list[uuid.UUID] = []
    t0 = time.perf_counter()
    for i in range(n):
        await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
        ids.append(await pub.one("stream"))
        if i % max(1, n // 10) == 0:
            check_alive(workers)
            log.info("stream: published %d/%d, %d unanswered", i + 1, n, inbox.outstanding(ids))
    # the stream window ends one interval after the last publish (when the next would be due)
    stream_end = time.perf_counter() + interval
    await asyncio.sleep(max(0.0, stream_end - time.perf_counter()))
    left = inbox.outstanding(ids)
    log.info("stream: over; %d unanswered, draining (at most %g s)", left, drain_s)
    sampler.phase = "drain"
    drained = await inbox.wait_all(ids, drain_s)
    purged = 0
    if not drained:
        purged = (await mgmt.depth())["messages_ready"]
        log.warning("stream: not drained in %g s; purging ~%d queued messages", drain_s, purged)
        await mgmt.purge()
    cpu1 = [w.cpu_s() for w in workers]
    return {
        "ids": ids,
        "t0": t0,
        "window_s": stream_end - t0,
        "drained": drained,
        "purged_about": purged,
        "worker_cpu_s": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
    }


async def settle(inbox: Inbox, ids: list[uuid.UUID], holding: int, timeout: float) -> None:
    """After a purge only the deliveries the workers hold (prefetch 1: at most one each) can
    still be answered: wait for ``holding`` more results of ``ids``, or ``timeout``."""
    target = max(0, inbox.outstanding(ids) - holding)
    deadline = time.monotonic() + timeout
    while inbox.outstanding(ids) > target and time.monotonic() < deadline:
        inbox._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await inbox._changed.wait()


async def backlog(
    pub: Publisher,
    inbox: Inbox,
    sampler: Sampler,
    n: int,
    workers: list[Worker],
    timeout: float,
    label: str,
) -> dict[str, Any]:
    sampler.phase = label
    cpu0 = [w.cpu_s() for w in workers]
    t0 = time.perf_counter()
    ids = [await pub.one(label) for _ in range(n)]
    t_published = time.perf_counter() - t0
    ok = await inbox.wait_all(ids, timeout)
    done = sorted(r for i in ids if (r := inbox.sent[i].received) is not None)
    elapsed = (done[-1] - t0) if done else math.nan
    rate = len(done) / elapsed if done and ok else math.nan
    cpu1 = [w.cpu_s() for w in workers]
    log.info(
        "%s: %d movies in %.1f s → %.4f movies/s%s",
        label,
        len(done),
        elapsed,
        rate,
        "" if ok else f" (TIMED OUT after {timeout:g} s)",
    )
    return {
        "workers": len(workers),
        "movies": n,
        "completed": len(done),
        "complete": ok,
        "publish_s": t_published,
        "elapsed_s": elapsed,
        "movies_per_s": rate,
        "completion_s": [d - t0 for d in done],
        "service_s": [inbox.sent[i].service_s for i in ids],
        "worker_cpu_s": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
    }


# --- report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(s[hi]) or math.isinf(s[lo]):
        return s[hi] if pos - lo > 0 else s[lo]
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return math.nan
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def fmt(v: float, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("metric", "measured", "target", "pass")
    cells = [
        (
            r["metric"],
            r["measured"],
            r["target"],
            "-" if r["pass"] is None else ("yes" if r["pass"] else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(f"\nstream benchmark\n{line}\n{'-' * len(line)}")
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="512² movies, 1.5-minute stream (about 3 min)"
    )
    p.add_argument("--minutes", type=float, help="stream length (default 10; quick 1.5)")
    p.add_argument("--rate", type=float, default=600.0, help="movies per hour (default 600)")
    p.add_argument("--size", type=int, help="frame edge in pixels (default 4096; quick 512)")
    p.add_argument("--frames", type=int, default=40, help="frames per movie (default 40)")
    p.add_argument("--pool", type=int, help="distinct movies generated (default 3; quick 6)")
    p.add_argument("--backlog", type=int, help="movies per throughput run (default 10)")
    p.add_argument("--workers", type=int, default=2, help="workers during the stream (2)")
    p.add_argument(
        "--fft-threads",
        type=int,
        default=2,
        help="PROCESSING_FFT_THREADS of the stream's workers (2: a movie alone gets both cores;"
        " the scaling runs always use 1)",
    )
    p.add_argument("--drain", type=float, help="seconds to wait for the stream to drain")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args()
    a.minutes = a.minutes if a.minutes is not None else (1.5 if a.quick else 10.0)
    a.size = a.size or (512 if a.quick else 4096)
    a.pool = a.pool or (6 if a.quick else 3)
    a.backlog = a.backlog or 10
    a.drain = a.drain if a.drain is not None else (20.0 if a.quick else 180.0)
    return a


def preflight(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    pixels = a.frames * a.size * a.size
    movie_bytes = pixels  # simulated counting movies are 8-bit (mode 0)
    need_disk = movie_bytes * a.pool * 1.05 + 64e6
    free_disk = shutil.disk_usage(tmp).free
    if free_disk < need_disk:
        raise SystemExit(f"need {need_disk / 1e9:.1f} GB in {tmp}, {free_disk / 1e9:.1f} free")
    mem = psutil.virtual_memory()
    need_mem = pixels * MOVIE_PEAK_BYTES_PER_PX * max(a.workers, 1)
    if mem.available < need_mem:
        log.warning(
            "workers may need %.1f GB at peak; %.1f GB available",
            need_mem / 1e9,
            mem.available / 1e9,
        )
    return {
        "movie_bytes": movie_bytes,
        "pool_bytes": movie_bytes * a.pool,
        "worker_peak_bytes_estimate": int(pixels * MOVIE_PEAK_BYTES_PER_PX),
        "mem_total_bytes": mem.total,
        "mem_available_bytes": mem.available,
        "disk_free_bytes": free_disk,
    }


async def main(a: argparse.Namespace) -> int:
    wall0 = time.perf_counter()
    load_start = os.getloadavg()
    namespace = f"bench-stream-{uuid.uuid4().hex[:8]}"
    settings = AmqpSettings(namespace=namespace)
    tmp = Path(tempfile.mkdtemp(prefix="gridpilot-stream-"))
    meta: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "namespace": namespace,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "loadavg_start": load_start,
    }
    log.info(
        "namespace %s, temp %s, load average at start %.2f %.2f %.2f", namespace, tmp, *load_start
    )
    mgmt = Management(settings, namespace)
    workers: list[Worker] = []
    inbox = Inbox()
    sampler_task: asyncio.Task[None] | None = None
    result: dict[str, Any] = {}
    try:
        meta["memory"] = preflight(a, tmp)
        data = tmp / "data"
        t = time.perf_counter()
        pool = make_pool(data / "pool", a.pool, a.size, a.frames, seed0=5000)
        warm = make_pool(data / "warm", 1, 512, 4, seed0=4999)
        meta["pool_generation_s"] = time.perf_counter() - t
        exposures = data / "exposures"
        exposures.mkdir()
        async with AmqpBus(settings, service="bench", delete_on_exit=True) as bus:
            sub = await bus.subscribe(
                transient_queue("bench", EVENTS, ("exposure.processed", "image.failed")),
                m.Message,
                inbox,
            )
            pub = Publisher(bus, inbox, pool, exposures, a.size, a.frames)
            warm_pub = Publisher(bus, inbox, warm, exposures, 512, 4, run_id=pub.run_id)

            async def ready(n: int, fft_threads: int, first: int) -> list[Worker]:
                """``n`` workers consuming and warmed up: one tiny movie each (prefetch 1
                hands one to each) loads the lazily imported numerics before anything is
                timed."""
                started = [
                    await start_worker(namespace, data, first + i, fft_threads) for i in range(n)
                ]
                workers.extend(started)
                await mgmt.wait_consumers(n, started, timeout=60)
                warm_ids = [await warm_pub.one("warmup") for _ in started]
                if not await inbox.wait_all(warm_ids, 120):
                    check_alive(started)
                    raise RuntimeError("warm-up movies were not processed within 120 s")
                return started

            t = time.perf_counter()
            streaming = await ready(a.workers, a.fft_threads, 0)
            meta["workers_ready_s"] = time.perf_counter() - t
            meta["worker_pids"] = [w.proc.pid for w in workers]
            log.info("%d workers ready in %.1f s", len(workers), meta["workers_ready_s"])

            sampler = Sampler(mgmt, inbox, time.perf_counter(), 2.0 if a.quick else 5.0)
            sampler_task = asyncio.create_task(sampler.run())
            n = max(1, round(a.minutes * 60 * a.rate / 3600))
            interval = 3600 / a.rate
            log.info("stream: %d movies, one every %.2f s, %d workers", n, interval, len(workers))
            s = await stream(pub, inbox, sampler, n, interval, a.drain, mgmt, streaming)
            s["t0_rel"] = s["t0"] - sampler.t0
            lost = 0
            if not s["drained"]:
                sampler.phase = "settle"
                done_s = [x for i in s["ids"] if (x := inbox.sent[i].service_s)]
                bound = 2 * (statistics.median(done_s) if done_s else 60.0) + 15
                await settle(inbox, s["ids"], len(streaming), timeout=bound)
                lost = inbox.outstanding(s["ids"])
            s["unanswered"] = inbox.outstanding(s["ids"])
            result["stream"] = s

            # throughput: the same backlog drained by 2 workers, then (one stopped) by 1
            service = [x for i in s["ids"] if (x := inbox.sent[i].service_s)]
            per_movie = statistics.median(service) if service else 60.0
            bl_timeout = max(60.0, 4 * a.backlog * per_movie + 30)
            check_alive(streaming)
            scalers = streaming
            if a.fft_threads != 1 or len(streaming) < 2:
                # the scaling target is for workers with one FFT thread each
                await asyncio.gather(*(stop_worker(w) for w in streaming))
                scalers = await ready(2, 1, len(workers))
                # a fresh worker's first full-size movie also makes the buffers it keeps
                # (first-touch page faults: several seconds); the stream's workers had them
                warm_full = [await pub.one("warmup-full") for _ in scalers]
                if not await inbox.wait_all(warm_full, bl_timeout):
                    check_alive(scalers)
                    raise RuntimeError("full-size warm-up movies were not processed in time")
                bl_timeout *= 2  # one thread each: slower per movie than while streaming
            scaling: list[dict[str, Any]] = []
            scaling.append(
                await backlog(pub, inbox, sampler, a.backlog, scalers[:2], bl_timeout, "backlog-2")
            )
            for w in scalers[1:]:
                await stop_worker(w)
            await mgmt.wait_consumers(1, scalers[:1], timeout=30)
            scaling.append(
                await backlog(pub, inbox, sampler, a.backlog, scalers[:1], bl_timeout, "backlog-1")
            )
            result["throughput"] = scaling
            result["lost"] = lost
            # workers go before the bus deletes the namespace's queues under them
            await asyncio.gather(*(stop_worker(w) for w in workers))
            sampler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler_task
            sampler_task = None
            await sub.close()
            result["samples"] = sampler.samples
            result["inbox"] = {"unknown": inbox.unknown, "duplicates": inbox.duplicates}
    finally:
        if sampler_task is not None:
            sampler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler_task
        await asyncio.gather(*(stop_worker(w) for w in workers), return_exceptions=True)
        logs = {f"worker-{i}": _tail(w.logfile) for i, w in enumerate(workers)}
        try:
            leftovers = await mgmt.delete_namespace()
            if leftovers:
                log.info("deleted leftovers of %s: %s", namespace, ", ".join(leftovers))
        except httpx.HTTPError as exc:
            log.warning("could not clean namespace %s: %r", namespace, exc)
        await mgmt.client.aclose()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.perf_counter() - wall0
    log.info("load average at end %.2f %.2f %.2f", *meta["loadavg_end"])
    return report(a, meta, inbox, result, logs)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-1500:]
    except OSError:
        return ""


def report(
    a: argparse.Namespace,
    meta: dict[str, Any],
    inbox: Inbox,
    result: dict[str, Any],
    logs: dict[str, str],
) -> int:
    s = result["stream"]
    sent = [inbox.sent[i] for i in s["ids"]]
    lat = [x.latency if x.latency is not None else math.inf for x in sent]
    done = [x.latency for x in sent if x.latency is not None]
    failed = [x for x in sent if x.failed]
    service = [x.service_s for x in sent if x.service_s is not None]
    median = pct(lat, 50)
    # queue depth during the stream window (not the drain afterwards)
    window = [
        d
        for d in result["samples"]
        if d.get("phase") == "stream"
        and "messages" in d
        and s["t0_rel"] <= d["t"] <= s["t0_rel"] + s["window_s"]
    ]
    ts = [(d["t"] - s["t0_rel"]) / 60 for d in window]
    ready = [float(d["messages_ready"]) for d in window]
    outstanding = [float(d["outstanding"]) for d in window]
    trend = slope(ts, ready)  # messages per minute
    growth = trend * s["window_s"] / 60 if not math.isnan(trend) else math.nan
    max_ready = max(ready) if ready else math.nan
    max_out = max(outstanding) if outstanding else math.nan
    max_lat = max(lat) if lat else math.nan
    grows = not (growth < 1.0 and max_ready <= a.workers)
    cpu = sum(s["worker_cpu_s"])
    answered = len(done)
    cpu_per_movie = cpu / answered if answered else math.nan
    cores_needed = cpu_per_movie * a.rate / 3600
    tp = {t["workers"]: t for t in result["throughput"]}
    r1 = tp.get(1, {}).get("movies_per_s", math.nan)
    r2 = tp.get(2, {}).get("movies_per_s", math.nan)
    ratio = r2 / r1 if r1 and not math.isnan(r1) and not math.isnan(r2) else math.nan
    n_pub = len(sent)

    def cores(w: int) -> str:
        # CPU the workers actually got while draining: < w means something else had the cores
        t = tp.get(w, {})
        got = sum(t.get("worker_cpu_s", [])) / t["elapsed_s"] if t.get("elapsed_s") else math.nan
        return (
            f"{a.backlog} in {fmt(t.get('elapsed_s', math.nan), '.1f')} s, workers used "
            f"{fmt(got, '.2f')} cores"
        )

    rows: list[dict[str, Any]] = [
        {
            "metric": f"stream: movies published ({a.rate:g}/h × {a.minutes:g} min, "
            f"{a.frames} × {a.size}²)",
            "measured": f"{n_pub}, answered {answered}, failed {len(failed)}",
            "target": "-",
            "pass": None,
        },
        {
            "metric": "stream: queue depth (ready) max / trend",
            "measured": f"{fmt(max_ready, '.0f')} / {fmt(trend, '+.2f')} msg/min "
            f"(unanswered max {fmt(max_out, '.0f')})",
            "target": f"never grows (trend·window < 1, max ≤ {a.workers})",
            "pass": not grows,
        },
        {
            "metric": "stream: file → result median",
            "measured": f"{fmt(median, '.2f')} s",
            "target": f"≤ {TARGET_MEDIAN_S:g} s",
            "pass": bool(median <= TARGET_MEDIAN_S),
        },
        {
            "metric": "stream: file → result p95 / max",
            "measured": f"{fmt(pct(lat, 95), '.2f')} / {fmt(max_lat, '.2f')} s"
            + ("" if answered == n_pub else f" ({n_pub - answered} never answered)"),
            "target": "-",
            "pass": None,
        },
        {
            "metric": f"stream: worker time per movie median ({a.fft_threads} FFT thread"
            + ("s)" if a.fft_threads != 1 else ")"),
            "measured": f"{fmt(pct(service, 50), '.2f')} s",
            "target": "-",
            "pass": None,
        },
        {
            "metric": "stream: worker CPU per movie → cores needed at rate",
            "measured": f"{fmt(cpu_per_movie, '.1f')} s → {fmt(cores_needed, '.2f')} of "
            f"{os.cpu_count()} (workers used {fmt(cpu / s['window_s'], '.2f')})",
            "target": "-",
            "pass": None,
        },
        {
            "metric": "throughput, 1 worker",
            "measured": f"{fmt(r1, '.4f')} movies/s ({cores(1)})",
            "target": "-",
            "pass": None,
        },
        {
            "metric": "throughput, 2 workers",
            "measured": f"{fmt(r2, '.4f')} movies/s ({cores(2)})",
            "target": "-",
            "pass": None,
        },
        {
            "metric": "throughput 2 workers / 1 worker",
            "measured": f"{fmt(ratio, '.2f')}×",
            "target": f"≥ {TARGET_SCALING:g}×",
            "pass": bool(ratio >= TARGET_SCALING),
        },
    ]
    print_table(rows)
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    print(
        f"\nload average (1/5/15 min) at start {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f}, "
        f"at end {la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f} on {os.cpu_count()} CPUs; "
        f"wall {meta['wall_s']:.0f} s"
    )
    body = {
        "benchmark": "stream",
        "quick": a.quick,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **meta,
        "table": rows,
        "stream": {
            "published": n_pub,
            "answered": answered,
            "window_s": s["window_s"],
            "drained": s["drained"],
            "purged_about": s["purged_about"],
            "worker_cpu_s": s["worker_cpu_s"],
            "latencies_s": [
                {
                    "i": k,
                    "movie": x.movie,
                    "published_s": x.published - sent[0].published,
                    "latency_s": x.latency,
                    "service_s": x.service_s,
                    "failed": x.failed,
                }
                for k, x in enumerate(sent)
            ],
        },
        "depth_samples": result["samples"],
        "throughput": result["throughput"],
        "inbox": result.get("inbox"),
        "worker_log_tails": logs,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(_finite(body), indent=1, allow_nan=False, default=str) + "\n")
    print(f"wrote {a.out}")
    return 0 if all(r["pass"] is not False for r in rows) else 1


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    sys.exit(asyncio.run(main(parse_args())))
