"""The experiment's routing choice: pure, immutable and the same on every replica.

A request with a routing key is hashed (blake2b, salted with the experiment's name and
version) to a point in [0, 1) and lands in the arm whose cumulative-weight bucket holds it, so
the same key reaches the same arm on every replica for as long as the version is in force, and
a new version draws a fresh assignment. Without a key, the process's own random generator
(seeded from ``os.urandom``) draws the point. An ``x-seldon-route`` header pins the arm; a
pinned request is recorded as such and never enters a decision. Weights change by publishing a
new experiment version (:mod:`finmlops.serving.experiment`), which builds a new
:class:`Router` on every replica.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finmlops.config import Candidate, ExperimentSettings, Mirror
from finmlops.errors import BadRequestError
from finmlops.ledger import Assignment

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


@dataclass(frozen=True, slots=True)
class Choice:
    """The arm a request goes to, how it was chosen, and the probability of that choice."""

    arm: str
    assignment: Assignment
    propensity: float


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
    version: int = 0
    """The experiment version this router enforces (0: not from a ledger)."""

    @classmethod
    def build(
        cls,
        experiment: str,
        candidates: Sequence[tuple[str, int]],
        default: str | None = None,
        mirror: str | None = None,
        mirror_percent: int = 0,
        shadow: bool = False,
        version: int = 0,
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
                   mirror, mirror_percent if mirror else 0, shadow, version)

    @classmethod
    def from_settings(cls, experiment: ExperimentSettings, version: int = 0) -> Router:
        """From an experiment definition (the Seldon Experiment fields) and its version."""
        mirror = experiment.mirror
        return cls.build(
            experiment.name,
            [(c.name, c.weight) for c in experiment.candidates],
            default=experiment.default,
            mirror=mirror.name if mirror is not None else None,
            mirror_percent=mirror.percent if mirror is not None else 0,
            shadow=experiment.shadow,
            version=version,
        )

    def to_settings(self) -> ExperimentSettings:
        """The experiment definition this router enforces."""
        mirror = (Mirror(name=self.mirror, percent=self.mirror_percent)
                  if self.mirror is not None else None)
        return ExperimentSettings(
            name=self.experiment, default=self.default,
            candidates=[Candidate(name=n, weight=w)
                        for n, w in zip(self.arms, self.weights, strict=True)],
            mirror=mirror, shadow=self.shadow)

    def with_weights(self, candidates: Sequence[tuple[str, int]]) -> Router:
        """The same experiment with new candidates/weights (the default must stay a candidate;
        the version is the caller's to assign)."""
        names = [n for n, _ in candidates]
        default = self.default if self.default in names else None
        return Router.build(self.experiment, candidates, default, self.mirror,
                            self.mirror_percent, self.shadow, self.version)

    @property
    def salt(self) -> str:
        return f"{self.experiment}:{self.version}:"

    def pick(self, point: float) -> str:
        """The arm whose bucket holds ``point`` in [0, 1); zero-weight buckets are empty."""
        return self.arms[bisect_right(self.bounds, point)]

    def share(self, arm: str) -> float:
        return self.weights[self.arms.index(arm)] / sum(self.weights)

    def choose(self, routing_key: str | None, point: float, pinned: str | None = None
               ) -> Choice:
        """Pinned arm (if it is a candidate), else the key's salted bucket, else ``point``'s
        bucket; the propensity is the arm's share (1 when pinned)."""
        if pinned is not None and pinned in self.arms:
            return Choice(pinned, "pinned", 1.0)
        if routing_key is not None:
            arm = self.pick(key_point(routing_key, self.salt))
            return Choice(arm, "hash", self.share(arm))
        arm = self.pick(point)
        return Choice(arm, "random", self.share(arm))

    def mirrors(self, routing_key: str | None, point: float) -> bool:
        """Whether this request is also scored by the mirror model."""
        if self.mirror is None or self.mirror_percent <= 0:
            return False
        if routing_key is not None:
            point = key_point(routing_key, salt=f"mirror:{self.salt}")
        return point * 100.0 < self.mirror_percent

    def shares(self) -> dict[str, float]:
        total = sum(self.weights)
        return {n: w / total for n, w in zip(self.arms, self.weights, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.experiment,
            "version": self.version,
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
