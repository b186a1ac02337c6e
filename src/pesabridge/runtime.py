"""Building the running system from a config, and running it in one process.

``pesabridge run`` serves callbacks, polls sources and delivers, all in one event loop;
``serve`` and ``worker`` run the two halves separately for scale-out. SIGTERM and SIGINT
stop it gracefully: pollers finish the file in hand, workers the batch in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from .config import Config
from .delivery import DeliveryWorker, RetryPolicy
from .reconcile.hold import routing_for
from .registry import sink_class, source_class
from .server import build_app
from .sinks import Sink
from .sources import CallbackSource, PollingSource, SourceContext
from .store import Store
from .store.group import GroupCommitter

log = structlog.get_logger("pesabridge.runtime")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Runtime:
    """Everything a config describes: store, sources, sinks, routes, worker, server."""

    def __init__(self, config: Config, *, store: Store | None = None) -> None:
        self.config = config
        self.store = store or Store.open(config.database)
        # Routing(config.routes), holding large callbacks when reconciliation.hold_above is set
        self.routing = routing_for(config)
        # Every callback source shares one committer: concurrent callbacks, one fsync.
        self.committer = GroupCommitter(
            self.store,
            max_batch=config.server.commit_max_batch,
            max_wait=config.server.commit_max_wait,
        )
        context = SourceContext(
            self.store,
            self.routing,
            config.base_dir,
            self.committer,
            after_statement=self._reconcile if config.reconciliation.auto else None,
        )
        self.pollers: list[PollingSource] = []
        self.callbacks: list[CallbackSource] = []
        for section in config.sources:
            source: Any = source_class(section.type)(section, context)
            if hasattr(source, "routes"):
                self.callbacks.append(source)
            else:
                self.pollers.append(source)
        self.sinks: dict[str, Sink] = {
            section.name: sink_class(section.type)(section) for section in config.sinks
        }
        for sink in self.sinks.values():
            # Sinks that keep state in the ledger (the ISO 8583 sink's STANs and journal).
            attach = getattr(sink, "attach", None)
            if attach is not None:
                attach(self.store)
        policies = {
            section.name: RetryPolicy(
                max_attempts=getattr(section, "max_attempts", 12),
                base=getattr(section, "backoff_base", 2.0),
                cap=getattr(section, "backoff_cap", 3600.0),
            )
            for section in config.sinks
        }
        # File-drop sinks cut their deliveries into batches themselves; the worker never
        # claims them one by one.
        self.batched: dict[str, Any] = {
            name: sink for name, sink in self.sinks.items() if getattr(sink, "batched", False)
        }
        for sink in self.batched.values():
            sink.base_dir = config.base_dir
        self.worker = DeliveryWorker(
            self.store,
            {name: sink for name, sink in self.sinks.items() if name not in self.batched},
            policies,
            batch=config.worker.batch,
            lease=timedelta(seconds=config.worker.lease_seconds),
            poll_interval=config.worker.poll_interval,
        )
        self.app = build_app(self.store, self.callbacks, config)
        self.port: int | None = None
        self.started = asyncio.Event()

    def _reconcile(self, file_id: int, path: Path | None) -> None:
        """After a file source ingested a statement: reconcile the days it covers."""
        from .reconcile import reconcile_after_ingest

        reconcile_after_ingest(self.store, file_id, self.config, path)

    async def run(
        self, stop: asyncio.Event | None = None, *, serve: bool = True, work: bool = True
    ) -> None:
        """Run until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is not given)."""
        own_stop = stop is None
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        if own_stop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[None]] = []
        server: _EmbeddedServer | None = None
        if serve:
            server = _EmbeddedServer(
                uvicorn.Config(
                    self.app,
                    host=self.config.server.host,
                    port=self.config.server.port,
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                    # X-Forwarded-For is each callback source's decision (trusted_proxies),
                    # never uvicorn's: it would believe any header sent from 127.0.0.1.
                    proxy_headers=False,
                )
            )
            tasks.append(asyncio.create_task(server.serve()))
            while not server.started:
                if tasks[0].done():
                    await tasks[0]  # surfaces "address already in use" and the like
                await asyncio.sleep(0.01)
            self.port = server.servers[0].sockets[0].getsockname()[1]
            log.info("serving callbacks", host=self.config.server.host, port=self.port)
        if work:
            tasks.extend(asyncio.create_task(p.run(stop)) for p in self.pollers)
            tasks.append(asyncio.create_task(self.worker.run(stop)))
            lease = timedelta(seconds=self.config.worker.lease_seconds)
            tasks.extend(
                asyncio.create_task(
                    sink.run(self.store, stop, worker=self.worker.worker_id, lease=lease)
                )
                for sink in self.batched.values()
            )
        self.started.set()
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            if server is not None:
                server.should_exit = True
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.worker.close()
            for source in self.callbacks:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            await asyncio.to_thread(self.committer.close)
            if own_stop:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
