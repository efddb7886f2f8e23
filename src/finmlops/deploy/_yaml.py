"""Deterministic YAML for every file this package writes (manifests, the promotion record)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors (shared dicts would otherwise become ``&id001``), and literal
    blocks for multi-line strings so embedded dashboards and configs stay readable."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_yaml(documents: Iterable[Any]) -> str:
    """Documents as YAML with sorted keys: the same input always gives the same bytes."""
    return yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=True,
                         default_flow_style=False, allow_unicode=True, width=100,
                         explicit_start=True)


def dump_one(value: Any) -> str:
    """One value (no document marker), e.g. a JSON patch list or an embedded manifest."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=True, default_flow_style=False)
