"""A rich progress display for the stage runner."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ConsoleReporter:
    """Prints a line per finished stage and a live bar for progress inside a stage."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[stage]}[/] {task.description}"),
            BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self._task: Any = None
        self._stage = ""

    def __enter__(self) -> ConsoleReporter:
        self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def stage_started(self, name: str, description: str) -> None:
        self._stage = name
        self._task = self._progress.add_task(description, total=None, stage=name)

    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=message, completed=completed or 0,
                                  total=total)

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(f"[green]✓[/] [bold]{name:<9}[/] {seconds:6.1f}s  {summary}")
