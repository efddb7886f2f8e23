"""Read ``finmlops.yaml`` and ``FINMLOPS_*`` variables into one validated :class:`Settings`.

The file and the environment are read by pydantic-settings' own sources (its YAML source and
its environment source with ``FINMLOPS_`` and the ``__`` nesting delimiter), so a value is
decoded by the type of its field: a string keeps its commas (a cron schedule, a token), a list
takes JSON or comma-separated items. Precedence: defaults < file < environment < overrides
(command-line flags). Every mistake is one :class:`ConfigError` naming where it came from:
the flag, the environment variable, or the key in the file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import EnvSettingsSource, SettingsError, YamlConfigSettingsSource

from finmlops.config.settings import Settings
from finmlops.errors import ConfigError

ENV_PREFIX = "FINMLOPS_"
CONFIG_ENV = "FINMLOPS_CONFIG"
DEFAULT_CONFIG_NAME = "finmlops.yaml"
NESTED_DELIMITER = "__"
ENV_ALIASES = {
    "FINMLOPS_INFERENCE_TOKEN": "FINMLOPS_SERVE__TOKENS__INFERENCE",
    "FINMLOPS_FEEDBACK_TOKEN": "FINMLOPS_SERVE__TOKENS__FEEDBACK",
    "FINMLOPS_ADMIN_TOKEN": "FINMLOPS_SERVE__TOKENS__ADMIN",
    "FINMLOPS_LEDGER_URL": "FINMLOPS_LEDGER__URL",
}
"""Short names people expect, and the variable each stands for (the long name wins)."""
_NOT_SETTINGS = {CONFIG_ENV}
"""Variables with the prefix that are not settings."""

Key = tuple[str, ...]


def load_settings(
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < YAML file < environment < ``overrides`` (dotted keys, e.g. CLI flags).

    The file is ``config_path``, else ``$FINMLOPS_CONFIG``, else ``./finmlops.yaml`` when it
    exists. ``environ`` defaults to ``os.environ`` (tests pass their own). ``override_names``
    names where an override came from (``{"data.source": "--source"}``), so an error about it
    names the flag. Raises :class:`ConfigError`, one line.
    """
    env = dict(os.environ if environ is None else environ)
    path = _config_path(config_path, env)
    origins = _Origins(path)
    data: dict[str, Any] = {}
    if path is not None:
        data = _YamlFile(path).read()
        origins.add_tree(data, "file")
    env_data = _environment(env, origins)
    _deep_update(data, env_data)
    for dotted, value in (overrides or {}).items():
        key = tuple(dotted.split("."))
        _deep_update(data, _nest(key, value))
        name = (override_names or {}).get(dotted)
        origins.add(key, "flag" if name else "override", name)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(origins.describe(exc)) from None


# ---- the file ------------------------------------------------------------------------------

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


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source; a file that is not a mapping of sections is one line."""

    def __init__(self, path: Path) -> None:
        self._path = path
        super().__init__(Settings, yaml_file=path, yaml_file_encoding="utf-8")

    def read(self) -> dict[str, Any]:
        return dict(self())

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        path = self._path
        try:
            text = Path(file_path).read_text(encoding="utf-8")
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


# ---- the environment -----------------------------------------------------------------------

class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (not always ``os.environ``).

    A list field also takes comma-separated items (``FINMLOPS_DATA__TICKERS=IBB,SPY``) where
    its value is not JSON; every other field is decoded as pydantic-settings decodes it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings, case_sensitive=False, env_prefix=ENV_PREFIX,
                         env_nested_delimiter=NESTED_DELIMITER)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            text = str(value).strip()
            if (field is not None and _is_scalar_list(field.annotation)
                    and text[:1] not in ("[", "{")):
                return [part.strip() for part in text.split(",") if part.strip()]
            raise ConfigError(_not_json(self._environ, field_name, text)) from None


def _environment(env: Mapping[str, str], origins: _Origins) -> dict[str, Any]:
    """The settings the environment sets; records which variable set which key."""
    names: dict[str, str] = {}
    for name in env:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in _NOT_SETTINGS:
            continue
        target = ENV_ALIASES.get(name.upper(), name)
        if target != name and target in env:
            continue  # the long name wins over its alias
        names[target] = name
    fields = set(Settings.model_fields)
    for target, name in names.items():
        key = tuple(p.lower() for p in target[len(ENV_PREFIX):].split(NESTED_DELIMITER))
        if not key[0] or key[0] not in fields:
            raise ConfigError(f"{name} ({'.'.join(key) or 'no key'}): unknown key")
        origins.add(key, "env", name)
    values = {target: env[name] for target, name in names.items()}
    try:
        return dict(_Environment(values)())
    except SettingsError as exc:  # a decoding error pydantic-settings wraps
        raise ConfigError(f"invalid configuration: {exc}") from None


def _is_scalar_list(annotation: Any) -> bool:
    """``list[str]``, ``list[float] | None``...: a list whose items are not models or dicts."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (list, tuple, set, frozenset):
        return len(args) == 1 and _is_scalar_list(args[0])
    return all(not (isinstance(a, type) and issubclass(a, BaseModel))
               and get_origin(a) is not dict for a in args)


def _not_json(env: Mapping[str, str], field_name: str, text: str) -> str:
    suffix = f"{NESTED_DELIMITER}{field_name}".upper()
    names = [n for n, v in env.items() if v.strip() == text
             and (n.upper().endswith(suffix) or n.upper() == f"{ENV_PREFIX}{field_name.upper()}")]
    where = names[0] if len(names) == 1 else f"the variable setting {field_name}"
    return f"{where}: not valid JSON (this key takes a JSON value)"


# ---- errors that name their origin ---------------------------------------------------------

@dataclass(frozen=True)
class _Origin:
    kind: str
    """``file``, ``env``, ``flag`` or ``override`` (a caller's dotted key without a flag)."""
    name: str | None = None


class _Origins:
    """Which source set each key, so an error names the flag, the variable or the file."""

    _RANK: ClassVar[dict[str, int]] = {"file": 0, "env": 1, "override": 2, "flag": 2}

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._by_key: dict[Key, _Origin] = {}

    def add(self, key: Key, kind: str, name: str | None = None) -> None:
        self._by_key[key] = _Origin(kind, name)

    def add_tree(self, tree: Mapping[str, Any], kind: str, prefix: Key = ()) -> None:
        for k, v in tree.items():
            key = (*prefix, str(k))
            if isinstance(v, Mapping) and v:
                self.add_tree(v, kind, key)
            else:
                self.add(key, kind)

    def of(self, loc: Key) -> _Origin | None:
        """The origin of the value at ``loc``: the longest recorded key that contains it
        (the later source on a tie), or ``None`` for a check across several keys."""
        best: tuple[int, int, _Origin] | None = None
        for key, origin in self._by_key.items():
            if loc[:len(key)] == key:
                rank = (len(key), self._RANK[origin.kind], origin)
                if best is None or rank[:2] > best[:2]:
                    best = rank
        return best[2] if best else None

    def describe(self, exc: ValidationError) -> str:
        """One line: a flag's or a variable's error starts with its name (``--source: ...``,
        ``FINMLOPS_HOME: ...``); the others name the key, after "invalid configuration" and
        the file when the file may hold the mistake."""
        named: list[str] = []
        keyed: list[str] = []
        in_file = False
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            key = ".".join(loc)
            message = _message(err)
            origin = self.of(loc) if loc else None
            if origin is not None and origin.name and origin.kind in ("flag", "env"):
                detail = "" if origin.kind == "flag" or len(loc) <= 1 else f" ({key})"
                named.append(f"{origin.name}{detail}: {message}")
                continue
            in_file = in_file or origin is None or origin.kind == "file"
            keyed.append(f"{key}: {message}" if key else message)
        if not keyed:
            return "; ".join(named)
        where = f" in {self.path}" if in_file and self.path is not None else ""
        return "; ".join([*named, f"invalid configuration{where}: " + "; ".join(keyed)])


def _message(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        if choices:
            return f"{_show(err['input'])} is not one of {', '.join(choices)}"
    return err["msg"].removeprefix("Value error, ")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


# ---- dictionaries --------------------------------------------------------------------------

def _nest(key: Key, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {key[-1]: value}
    for part in reversed(key[:-1]):
        out = {part: out}
    return out


def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = dict(v) if isinstance(v, Mapping) else v
