"""A rich progress display for the stage runner."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

HEARTBEAT_S = 15.0
"""Off a terminal (CI, a pod's log), a long stage prints its latest progress this often."""


class ConsoleReporter:
    """Prints a line per finished stage and a live bar for progress inside a stage.

    Off a terminal there is no live bar (it would only leave a blank line): a stage that
    runs long prints its latest progress message every :data:`HEARTBEAT_S` seconds instead,
    so a log shows the work is moving."""

    def __init__(self, console: Any, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self._live = bool(console.is_terminal)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[stage]}[/] {task.description}"),
            BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
            console=console, transient=True, disable=not self._live,
        )
        self._task: Any = None
        self._stage = ""
        self._clock = clock
        self._last_line = 0.0

    def __enter__(self) -> ConsoleReporter:
        if self._live:
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live:
            self._progress.stop()

    def stage_started(self, name: str, description: str) -> None:
        self._stage = name
        self._last_line = self._clock()
        self._task = self._progress.add_task(description, total=None, stage=name)

    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None:
        """Show ``message``; a message without counts keeps the bar where it was (a training
        stage reports "training X" as i of n, then per-fold messages without counts)."""
        if self._task is None:
            return
        if completed is None and total is None:
            self._progress.update(self._task, description=message)
        else:
            self._progress.update(self._task, description=message, completed=completed or 0,
                                  total=total)
        now = self._clock()
        if not self._live and now - self._last_line >= HEARTBEAT_S:
            self._last_line = now
            counts = f" ({completed:g}/{total:g})" if completed is not None and total else ""
            self.console.print(f"  {self._stage:<9} {message}{counts}", markup=False,
                               highlight=False)

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(f"[green]✓[/] [bold]{name:<9}[/] {seconds:6.1f}s  {summary}")
