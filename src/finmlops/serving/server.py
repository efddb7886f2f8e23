"""Running the app: a real uvicorn server in a background thread, and the process entry."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finmlops.errors import NotReadyError

if TYPE_CHECKING:
    from finmlops.config import Settings


@dataclass
class ServerHandle:
    """A uvicorn server running in a thread; ``stop()`` shuts it down gracefully."""

    url: str
    host: str
    port: int
    server: Any
    thread: threading.Thread
    app: Any

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else Nagle +
    # delayed ACK add 40 ms whenever a response goes out in two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # listening now: a client that connects once the URL is announced waits in the backlog
    # until uvicorn accepts, instead of being refused
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                  wait_ready: bool = True, timeout: float = 60.0,
                  **config: Any) -> ServerHandle:
    """Start ``app`` on uvicorn in a daemon thread; returns once it accepts connections
    (and, with ``wait_ready``, once its models are loaded)."""
    import uvicorn

    sock = bind(host, port)
    actual = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "http": "httptools",
                               "loop": "asyncio", "access_log": False}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{actual}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise NotReadyError(f"server on {host}:{actual} did not start")
        time.sleep(0.01)
    url_host = f"[{host}]" if ":" in host else host
    handle = ServerHandle(f"http://{url_host}:{actual}", host, actual, server, thread, app)
    if wait_ready and hasattr(app, "wait_loaded") and not app.wait_loaded(
            max(0.0, deadline - time.monotonic())):
        status = app.plane.status() if hasattr(app, "plane") else {}
        handle.stop()
        raise NotReadyError(f"service not ready: {status.get('load_error') or status}")
    return handle


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _multiprocess_metrics(settings: Settings) -> None:
    """A fresh, empty directory for prometheus_client's multiprocess files, set in the
    environment the workers inherit (before any of them imports prometheus_client)."""
    import os
    import shutil

    from finmlops.monitoring.metrics import MULTIPROC_ENV

    root = (settings.home / "run").resolve()
    for old in root.glob("metrics-*") if root.is_dir() else ():
        pid = old.name.removeprefix("metrics-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)  # left by a server that has exited
    path = root / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


def _ignore(signum: int, frame: Any) -> None:
    """The signal was already handled by uvicorn's graceful shutdown."""


def serve(settings: Settings, models: Mapping[str, Path] | None = None, *,
          config_path: str | None = None, workers: int | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Run the service in this process (``workers`` > 1: uvicorn's worker processes, sharing
    the ledger and, through prometheus_client's multiprocess mode, the metrics).

    SIGTERM/SIGINT drain in-flight requests (uvicorn's graceful shutdown: each waits for its
    commit) and the lifespan shutdown closes the ledger. ``announce(url)`` is called once the
    port is bound.
    """
    import json
    import os

    import uvicorn

    from finmlops.serving import factory
    from finmlops.serving.auth import Auth

    if not Auth(settings.serve.tokens).enabled and not _loopback(settings.serve.host):
        logging.getLogger("finmlops.serving").warning(
            "serving on %s without serve.tokens: inference, feedback and the /admin routes "
            "are open to anyone who can reach it", settings.serve.host)
    os.environ[factory.SETTINGS_ENV] = factory.settings_to_env(settings)
    if models is not None:
        os.environ[factory.MODELS_ENV] = json.dumps({k: str(v) for k, v in models.items()})
    if config_path is not None:
        os.environ[factory.CONFIG_ENV] = str(config_path)
    n = workers or settings.serve.workers
    os.environ[factory.WORKERS_ENV] = str(n)
    if n > 1:
        _multiprocess_metrics(settings)
    s = settings.serve
    config = uvicorn.Config(
        "finmlops.serving.factory:app_from_env", factory=True, host=s.host, port=s.port,
        workers=n, lifespan="on", http="httptools", loop="uvloop", log_level="warning",
        access_log=False, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=int(s.request_timeout_s) + 5,
        backlog=2048)
    sock = bind(s.host, s.port)
    port = sock.getsockname()[1]
    url_host = f"[{s.host}]" if ":" in s.host else s.host
    if announce is not None:
        announce(f"http://{url_host}:{port}")
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM/SIGINT to the previous handler after its graceful shutdown;
    # a no-op handler there lets a drained, flushed shutdown exit 0 instead of -15.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore)
    # The event loop shares the GIL with the log writer: hand it over every 1 ms, not 5 ms.
    sys.setswitchinterval(0.001)
    if n > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])
