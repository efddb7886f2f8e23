"""The experiment's routing choice: pure, immutable and the same on every replica.

A request with a routing key is hashed (blake2b) to a point in [0, 1) and lands in the arm
whose cumulative-weight bucket holds it, so the same key always reaches the same arm without
shared state; without a key a seeded generator draws the point. A replayed ``x-seldon-route``
header pins the arm. Weights change by building a new :class:`Router` and swapping it in.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finmlops.config import ExperimentSettings
from finmlops.errors import BadRequestError

_SCALE = float(2**64)


def key_point(key: str, salt: str = "") -> float:
    """A uniform point in [0, 1) for ``key`` (the same on every machine and process)."""
    digest = hashlib.blake2b((salt + key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def parse_route(header: str, arms: Iterable[str]) -> str | None:
    """The arm named by an ``x-seldon-route`` value (``:<model>_<version>:`` or a bare name)."""
    known = set(arms)
    for part in header.split(":"):
        part = part.strip()
        if not part:
            continue
        if part in known:
            return part
        head, sep, _ = part.rpartition("_")
        if sep and head in known:
            return head
    return None


@dataclass(frozen=True)
class Router:
    """Arms with integer weights; ``bounds[i]`` is the upper edge of arm i's bucket."""

    experiment: str
    arms: tuple[str, ...]
    weights: tuple[int, ...]
    bounds: tuple[float, ...]
    default: str | None = None
    mirror: str | None = None
    mirror_percent: int = 0
    shadow: bool = False

    @classmethod
    def build(
        cls,
        experiment: str,
        candidates: Sequence[tuple[str, int]],
        default: str | None = None,
        mirror: str | None = None,
        mirror_percent: int = 0,
        shadow: bool = False,
    ) -> Router:
        """Validate and build; errors are :class:`BadRequestError` with one readable line."""
        if not candidates:
            raise BadRequestError("an experiment needs at least one candidate")
        names = [str(n) for n, _ in candidates]
        weights = [w for _, w in candidates]
        if len(set(names)) != len(names):
            raise BadRequestError("candidate names must be unique")
        for n, w in zip(names, weights, strict=True):
            if not n:
                raise BadRequestError("candidate names must not be empty")
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                raise BadRequestError(f"weight of {n!r} must be a whole number >= 0")
        total = sum(weights)
        if total <= 0:
            raise BadRequestError("candidate weights must sum to more than 0")
        if default is not None and default not in names:
            raise BadRequestError(f"default {default!r} is not a candidate")
        if not 0 <= mirror_percent <= 100:
            raise BadRequestError("mirror percent must be within 0..100")
        running = 0
        bounds: list[float] = []
        for w in weights:
            running += w
            bounds.append(running / total)
        bounds[-1] = 1.0
        return cls(experiment, tuple(names), tuple(weights), tuple(bounds), default,
                   mirror, mirror_percent if mirror else 0, shadow)

    @classmethod
    def from_settings(cls, experiment: ExperimentSettings) -> Router:
        """From the settings' experiment section (the Seldon Experiment fields)."""
        mirror = experiment.mirror
        return cls.build(
            experiment.name,
            [(c.name, c.weight) for c in experiment.candidates],
            default=experiment.default,
            mirror=mirror.name if mirror is not None else None,
            mirror_percent=mirror.percent if mirror is not None else 0,
            shadow=experiment.shadow,
        )

    def with_weights(self, candidates: Sequence[tuple[str, int]]) -> Router:
        """The same experiment with new candidates/weights (the default must stay a candidate)."""
        names = [n for n, _ in candidates]
        default = self.default if self.default in names else None
        return Router.build(self.experiment, candidates, default, self.mirror,
                            self.mirror_percent, self.shadow)

    def pick(self, point: float) -> str:
        """The arm whose bucket holds ``point`` in [0, 1); zero-weight buckets are empty."""
        return self.arms[bisect_right(self.bounds, point)]

    def choose(self, routing_key: str | None, point: float, pinned: str | None = None) -> str:
        """Pinned arm (if it is a candidate), else the key's bucket, else ``point``'s bucket."""
        if pinned is not None and pinned in self.arms:
            return pinned
        if routing_key is not None:
            return self.pick(key_point(routing_key))
        return self.pick(point)

    def mirrors(self, routing_key: str | None, point: float) -> bool:
        """Whether this request is also scored by the mirror model."""
        if self.mirror is None or self.mirror_percent <= 0:
            return False
        if routing_key is not None:
            point = key_point(routing_key, salt="mirror:")
        return point * 100.0 < self.mirror_percent

    def shares(self) -> dict[str, float]:
        total = sum(self.weights)
        return {n: w / total for n, w in zip(self.arms, self.weights, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.experiment,
            "default": self.default,
            "candidates": [{"name": n, "weight": w}
                           for n, w in zip(self.arms, self.weights, strict=True)],
            "mirror": ({"name": self.mirror, "percent": self.mirror_percent}
                       if self.mirror else None),
            "shadow": self.shadow,
        }


def candidates_from_json(body: Any) -> list[tuple[str, int]]:
    """``{"candidates": [{"name", "weight"}]}`` from an admin request, validated."""
    if (not isinstance(body, Mapping) or set(body) != {"candidates"}
            or not isinstance(body["candidates"], list)):
        raise BadRequestError('expected {"candidates": [{"name": ..., "weight": ...}]}')
    out: list[tuple[str, int]] = []
    for c in body["candidates"]:
        if not isinstance(c, Mapping) or set(c) - {"name", "weight"}:
            raise BadRequestError("each candidate is {\"name\": str, \"weight\": int}")
        name, weight = c.get("name"), c.get("weight")
        if not isinstance(name, str) or isinstance(weight, bool) or not isinstance(weight, int):
            raise BadRequestError("each candidate is {\"name\": str, \"weight\": int}")
        out.append((name, weight))
    return out
