"""Read ``finmlops.yaml`` and ``FINMLOPS_*`` variables into one validated :class:`Settings`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from finmlops.config.settings import Settings
from finmlops.errors import ConfigError

ENV_PREFIX = "FINMLOPS_"
CONFIG_ENV = "FINMLOPS_CONFIG"
DEFAULT_CONFIG_NAME = "finmlops.yaml"
# Short names people expect, mapped to their place in the tree.
_ENV_ALIASES = {
    "INFERENCE_TOKEN": ("serve", "tokens", "inference"),
    "FEEDBACK_TOKEN": ("serve", "tokens", "feedback"),
    "ADMIN_TOKEN": ("serve", "tokens", "admin"),
    "LEDGER_URL": ("ledger", "url"),
    "HOME": ("home",),
}
# Variables with the prefix that are not settings.
_ENV_IGNORED = {"CONFIG"}


def load_settings(
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < YAML file < environment < ``overrides`` (e.g. CLI flags).

    The file is ``config_path``, else ``$FINMLOPS_CONFIG``, else ``./finmlops.yaml`` when
    it exists. Raises :class:`ConfigError` naming the offending key.
    """
    env = dict(os.environ if environ is None else environ)
    path = _config_path(config_path, env)
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    _deep_update(data, _from_env(env))
    if overrides:
        _deep_update(data, _nest(overrides))
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _config_path(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        path = Path(explicit)
    elif env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    else:
        default = Path(DEFAULT_CONFIG_NAME)
        return default if default.is_file() else None
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (is it a YAML file?)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    odd = [repr(k) for k in loaded if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"invalid configuration in {path}: {', '.join(odd)}: unknown key")
    return loaded


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):]
        if name in _ENV_IGNORED or not name:
            continue
        parts = _ENV_ALIASES.get(name) or tuple(p.lower() for p in name.split("__"))
        _deep_update(out, _nest({".".join(parts): _parse_env_value(raw)}))
    return out


def _parse_env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    if "," in text:
        return [p.strip() for p in text.split(",") if p.strip()]
    return raw


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
    origin = f" in {path}" if path is not None else ""
    return f"invalid configuration{origin}: " + "; ".join(lines)
