"""The local stage runner behind ``finmlops run``.

Stages are named functions ``fn(ctx) -> StageResult`` found by import path, so importing the
runner costs nothing and each stage pulls in its heavy dependencies only when it runs.
Outputs that later stages (or later commands) need are merged into a small JSON state file
under ``FINMLOPS_HOME``, so ``finmlops evaluate`` can follow a ``finmlops train`` run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from finmlops.config import Settings, public_dict
from finmlops.errors import StageError


class Reporter(Protocol):
    """Where stages report progress; the CLI shows it with rich, tests collect it."""

    def stage_started(self, name: str, description: str) -> None: ...
    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None: ...
    def stage_finished(self, name: str, seconds: float, summary: str) -> None: ...


class SilentReporter:
    """Collects events; used by tests and library callers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, name: str, description: str) -> None:
        self.events.append(("start", name))

    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None:
        self.events.append(("progress", message))

    def stage_finished(self, name: str, seconds: float, summary: str) -> None:
        self.events.append(("done", f"{name}: {summary}"))


@dataclass(frozen=True)
class StageResult:
    summary: str
    """One human line, shown after the stage's name."""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able values merged into the run state for later stages."""


@dataclass
class RunContext:
    settings: Settings
    reporter: Reporter
    state: dict[str, Any] = field(default_factory=dict)

    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None:
        self.reporter.progress(message, completed, total)

    def require(self, key: str, stage: str) -> Any:
        """An output of an earlier stage, or a clear error naming the stage to run first."""
        if key not in self.state:
            raise StageError(f"no {key!r} yet: run `finmlops run --until {stage}` first")
        return self.state[key]

    def cache_dir(self, stage: str, key: Any) -> Path:
        """A directory named by the hash of ``key`` (any JSON-able value), for ``stage``."""
        digest = hashlib.sha256(
            json.dumps(key, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        return self.settings.runs_dir / stage / digest


@dataclass(frozen=True)
class Stage:
    name: str
    target: str
    """``module:function`` of the stage function."""
    description: str

    def load(self) -> Callable[[RunContext], StageResult]:
        module, _, func = self.target.partition(":")
        fn: Callable[[RunContext], StageResult] = getattr(importlib.import_module(module), func)
        return fn


def state_path(settings: Settings) -> Path:
    return settings.home.resolve() / "state.json"


def load_state(settings: Settings) -> dict[str, Any]:
    path = state_path(settings)
    if not path.is_file():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def save_state(settings: Settings, state: Mapping[str, Any]) -> None:
    """Atomically replace the state file (a reader sees the old or the new, never half)."""
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(dict(state), indent=2, sort_keys=True, default=str), "utf-8")
    os.replace(tmp, path)


def select(stages: Sequence[Stage], only: Iterable[str] | None = None,
           start: str | None = None, until: str | None = None) -> list[Stage]:
    """The stages to run, in pipeline order."""
    names = [s.name for s in stages]
    for n in [*(only or []), *(x for x in (start, until) if x)]:
        if n not in names:
            raise StageError(f"unknown stage {n!r}; stages are: {', '.join(names)}")
    chosen = list(stages)
    if start:
        chosen = chosen[names.index(start):]
    if until:
        chosen = chosen[: [s.name for s in chosen].index(until) + 1] if until in [
            s.name for s in chosen] else []
    if only:
        wanted = set(only)
        chosen = [s for s in chosen if s.name in wanted]
    if not chosen:
        raise StageError("no stage selected")
    return chosen


def run_stages(settings: Settings, stages: Sequence[Stage], reporter: Reporter,
               state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``stages`` in order, persisting the merged outputs after each one."""
    ctx = RunContext(settings=settings, reporter=reporter,
                     state=load_state(settings) if state is None else state)
    ctx.state["config"] = public_dict(settings)
    for stage in stages:
        reporter.stage_started(stage.name, stage.description)
        t0 = time.perf_counter()
        result = stage.load()(ctx)
        ctx.state.update(result.outputs)
        ctx.state.setdefault("stages", {})[stage.name] = {
            "summary": result.summary,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        save_state(settings, ctx.state)
        reporter.stage_finished(stage.name, time.perf_counter() - t0, result.summary)
    return ctx.state
