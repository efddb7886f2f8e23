"""The local stage runner behind ``finmlops run``.

Stages are named functions ``fn(ctx) -> StageResult`` found by import path, so importing the
runner costs nothing and each stage pulls in its heavy dependencies only when it runs.
Outputs that later stages (or later commands) need are merged into a small JSON state file
under ``FINMLOPS_HOME``, so ``finmlops evaluate`` can follow a ``finmlops train`` run. Several
processes (parallel workflow pods on one volume) may merge into it at once: each merge holds an
exclusive lock beside the file, re-reads it, merges and replaces it atomically.

The state is relocatable: an absolute path inside the home is stored relative to it
(``<home>/runs/...``) and resolved in the current home on read, so a copied or moved
``FINMLOPS_HOME`` reads its own files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from finmlops.config import Settings, public_dict
from finmlops.contracts import RunState
from finmlops.errors import StageError
from finmlops.files import write_text


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
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-stage options from the command line, by stage name (e.g. ``train``'s variants)."""

    def option(self, stage: str, name: str, default: Any = None) -> Any:
        """The command-line option ``name`` given for ``stage``, else ``default``."""
        return self.options.get(stage, {}).get(name, default)

    def progress(self, message: str, completed: float | None = None,
                 total: float | None = None) -> None:
        self.reporter.progress(message, completed, total)

    def run_state(self, *sections: str) -> RunState:
        """The typed view of :attr:`state` (only ``sections``, the stage's inputs, when
        named); its ``need_*`` accessors name the stage to run when an output is missing."""
        return RunState.of(self.state, *sections)

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


def lock_path(settings: Settings) -> Path:
    """The lock file beside ``state.json`` that serialises writers."""
    return settings.home.resolve() / "state.json.lock"


@contextlib.contextmanager
def state_lock(settings: Settings) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the state's lock file (blocks until it is free).

    ``flock`` works across processes on one host and, on Linux, across NFS clients (the
    kernel maps it to a POSIX lock), so pods sharing a volume serialise here too."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


HOME_MARK = "<home>"
"""How the state writes the home: ``<home>/runs/train/...`` is a path inside the home."""


def relative_to_home(settings: Settings, path: str | Path) -> str:
    """``path`` as recorded in a file under the home: ``<home>/...`` when it is an absolute
    path inside the home, else unchanged."""
    text = str(path)
    p = Path(text)
    if not p.is_absolute():
        return text
    home = settings.home.resolve()
    for candidate in (p, p.resolve()):
        if candidate.is_relative_to(home):
            rel = candidate.relative_to(home).as_posix()
            return HOME_MARK if rel == "." else f"{HOME_MARK}/{rel}"
    return text


def resolve_in_home(settings: Settings, recorded: str) -> str:
    """A value recorded by :func:`relative_to_home`, as an absolute path in the current home
    (any other value unchanged)."""
    if recorded == HOME_MARK:
        return str(settings.home.resolve())
    if recorded.startswith(HOME_MARK + "/"):
        return str(settings.home.resolve() / recorded[len(HOME_MARK) + 1:])
    return recorded


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, str | Path):
        return fn(str(value))
    return value


def load_state(settings: Settings) -> dict[str, Any]:
    """The state on disk (``{}`` when there is none), paths resolved in the current home;
    needs no lock, writes are atomic."""
    path = state_path(settings)
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError(f"cannot read the run state {path} ({type(exc).__name__}): fix or "
                         "remove it (stages run again from cached outputs)") from None
    if not isinstance(loaded, dict):
        raise StageError(f"the run state {path} is not a JSON object: fix or remove it "
                         "(stages run again from cached outputs)")
    resolved: dict[str, Any] = _map_strings(loaded, lambda v: resolve_in_home(settings, v))
    return resolved


def load_run_state(settings: Settings, *sections: str) -> RunState:
    """The typed view of the state on disk (:func:`load_state`), of ``sections`` only when
    named."""
    return RunState.of(load_state(settings), *sections)


def _write_state(settings: Settings, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically (a reader sees the old or the new, never half);
    paths inside the home are written relative to it."""
    on_disk = _map_strings(dict(state), lambda v: relative_to_home(settings, v))
    write_text(state_path(settings), json.dumps(on_disk, indent=2, sort_keys=True, default=str))


def save_state(settings: Settings, state: Mapping[str, Any]) -> None:
    """Replace the whole state (under the lock, atomically). Stages merge instead: see
    :func:`merge_state`."""
    with state_lock(settings):
        _write_state(settings, state)


def merge_outputs(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` merged in: a dict value merges with the dict already there
    key by key (so ``trained`` of one variant keeps the other variants' entries; a ``None``
    entry removes that key), any other value replaces. Pure: neither argument changes."""
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping):
            old = out.get(key)
            merged = dict(old) if isinstance(old, Mapping) else {}
            for k, v in value.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            out[key] = merged
        else:
            out[key] = value
    return out


def merge_state(settings: Settings, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Lock, re-read the state on disk, merge ``updates`` (see :func:`merge_outputs`), write
    atomically, unlock; returns the merged state. Safe for concurrent writers on one
    filesystem: no writer's keys are lost."""
    with state_lock(settings):
        merged = merge_outputs(load_state(settings), updates)
        _write_state(settings, merged)
    return merged


def select(stages: Sequence[Stage], only: Iterable[str] | None = None,
           start: str | None = None, until: str | None = None) -> list[Stage]:
    """The stages to run, in pipeline order."""
    names = [s.name for s in stages]
    for n in [*(only or []), *(x for x in (start, until) if x)]:
        if n not in names:
            raise StageError(f"unknown stage {n!r}; stages are: {', '.join(names)}")
    if start and until and names.index(until) < names.index(start):
        raise StageError(f"no stage selected: {until!r} (until) comes before {start!r} (from); "
                         f"stages run in order: {', '.join(names)}")
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
               state: dict[str, Any] | None = None,
               options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``stages`` in order, merging each one's outputs into the state on disk.

    ``state`` (default: the state on disk) is what the stages see first; when given, it is
    merged into the state on disk with the first stage's outputs. After each stage the
    context sees the merged state on disk, including what concurrent runs wrote meanwhile.
    ``options`` are per-stage command-line options (:meth:`RunContext.option`)."""
    ctx = RunContext(settings=settings, reporter=reporter,
                     state=load_state(settings) if state is None else state,
                     options=dict(options or {}))
    pending: dict[str, Any] = {} if state is None else dict(state)
    ctx.state["config"] = public_dict(settings)
    for stage in stages:
        reporter.stage_started(stage.name, stage.description)
        t0 = time.perf_counter()
        result = stage.load()(ctx)
        updates = {
            **pending,
            "config": ctx.state["config"],
            **result.outputs,
            "stages": {stage.name: {"summary": result.summary,
                                    "seconds": round(time.perf_counter() - t0, 3)}},
        }
        pending = {}
        ctx.state = merge_state(settings, updates)
        reporter.stage_finished(stage.name, time.perf_counter() - t0, result.summary)
    return ctx.state
