"""An ingest killed with SIGKILL mid-write leaves the store as it was, and the next one works.

The child process wraps the store's private write/move steps (test-only, no production hook)
so it pauses right after the first file lands in staging, or right after the first file is
moved into the version directory but before ``manifest.json``; the parent kills it there.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from finmlops.config import Settings
from finmlops.data import ingest, list_versions, read_bars

pytestmark = [pytest.mark.integration]

CHILD = textwrap.dedent("""
    import datetime as dt, sys, time
    from pathlib import Path
    from finmlops.config import Settings
    from finmlops.data import DatasetStore, ingest

    home, phase = Path(sys.argv[1]), sys.argv[2]
    original = getattr(DatasetStore, phase)

    def paused(self, *args):  # the first write/move is always a Parquet file
        original(self, *args)
        print("PAUSED", flush=True)
        time.sleep(60)

    setattr(DatasetStore, phase, paused)
    ingest(Settings(home=home), tickers=["IBB", "SPY"], start=dt.date(2020, 1, 1),
           end=dt.date(2020, 3, 31))
    print("FINISHED", flush=True)
""")


@pytest.mark.parametrize("phase", ["_write", "_move"])
def test_sigkill_mid_ingest_leaves_store_valid(phase: str, settings: Callable[..., Settings],
                                               tmp_path: Path) -> None:
    s = settings()
    before = ingest(s, tickers=["IBB"], start=dt.date(2020, 1, 1), end=dt.date(2020, 1, 31))
    listed = [m.version for m in list_versions(s)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), phase],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "PAUSED", child.stderr.read() if child.stderr else line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    root = Path(s.store_uri)
    leftovers = [p for p in root.rglob("*.parquet") if p.parent.name not in listed]
    assert leftovers, "the child should have been killed with files half-published"
    assert [m.version for m in list_versions(s)] == listed
    assert len(read_bars(s)) == before.manifest.rows

    after = ingest(s, tickers=["IBB", "SPY"], start=dt.date(2020, 1, 1),
                   end=dt.date(2020, 3, 31))
    assert after.created
    assert [m.version for m in list_versions(s)] == [after.version, *listed]
    assert len(read_bars(s)) == after.manifest.rows
    assert not (root / "staging").exists() or not any((root / "staging").iterdir())


CTRL_C_CHILD = textwrap.dedent("""
    import sys, time
    from finmlops.cli import main
    from finmlops.data import DatasetStore

    original = DatasetStore._move

    def paused(self, *args):  # the first move is a Parquet file into the version directory
        original(self, *args)
        print("PAUSED", flush=True)
        time.sleep(60)

    DatasetStore._move = paused
    sys.exit(main(["ingest", "--tickers", "IBB,SPY", "--start", "2020-01-01",
                   "--end", "2020-03-31"]))
""")


def test_ctrl_c_mid_ingest_is_one_line_exit_130_and_no_partial_version(
        settings: Callable[..., Settings], tmp_path: Path) -> None:
    s = settings()
    before = ingest(s, tickers=["IBB"], start=dt.date(2020, 1, 1), end=dt.date(2020, 1, 31))
    root = Path(s.store_uri)
    files_before = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMLOPS_")}
    env["FINMLOPS_HOME"] = str(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "PAUSED", child.stderr.read() if child.stderr else line
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("interrupted"), err
    assert "Traceback" not in err + out
    files_after = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files_after == files_before  # no half-moved version, no staging leftovers
    assert [m.version for m in list_versions(s)] == [before.version]
