"""A real PostgreSQL server on loopback for the tests (Debian's ``postgresql`` package).

The server refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` user and every server command runs as that user (``runuser``). Trust
authentication on 127.0.0.1 only; a throwaway data directory under /tmp; a database per test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "postgresql"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def skip_reason() -> str | None:
    """Why a PostgreSQL server cannot run here, or None when it can."""
    if find_bindir() is None:
        return f"PostgreSQL server not installed (Debian package {PACKAGE})"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as the postgres user"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One PostgreSQL cluster: start, stop (e.g. for an outage), fresh databases."""

    bindir: Path
    datadir: Path
    port: int
    user: str | None
    """The OS user the server runs as when the tests run as root."""

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.datadir} -c fsync=on "
                "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", opts, "-l",
                  str(self.datadir / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status", check=False
                         ).returncode == 0

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres_server():  # type: ignore[no-untyped-def]
    """Start a throwaway cluster; stopped and removed on exit."""
    bindir = find_bindir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="finmlops-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        shutil.chown(root, user=user)
    os.chmod(root, 0o700)
    server = PostgresServer(bindir, root / "data", free_port(), user)
    try:
        if user is not None:
            (root / "data").mkdir()
            shutil.chown(root / "data", user=user)
        server.init()
        server.start()
        deadline = time.monotonic() + 30
        while not _accepts(server.port):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start: "
                                   + (root / "data" / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
