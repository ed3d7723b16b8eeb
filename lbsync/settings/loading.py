"""Where a Settings comes from: YAML file + `LBSYNC_*` environment + flags, merged in one place.

Precedence, highest first: command-line flag > `LBSYNC_<NAME>` environment variable >
YAML settings file (`--config`) > the default declared in lbsync.settings.fields. Flags,
env names and YAML keys are all derived from the field declarations.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from lbsync.exceptions import SettingsError
from lbsync.settings.fields import FIELDS, Settings

ENV_PREFIX = "LBSYNC_"


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = FIELDS[name].metadata["kind"]
    try:
        if kind == "list":
            items = value.split(",") if isinstance(value, str) else list(value or ())
            items = [str(i).strip() for i in items if str(i).strip()]
            return () if items == ["none"] else tuple(items)
        if kind == "bool":
            return _to_bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{origin}: {name} = {value!r} is not a valid {kind or 'string'}") from e


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(value)


def from_file(path: str) -> Dict[str, Any]:
    """Read a YAML settings file: a mapping of field names (dashes or underscores)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise SettingsError(f"settings file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"settings file {path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path}: must be a mapping of setting names to values")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise SettingsError(f"settings file {path}: unknown setting {key!r}")
        out[name] = _coerce(name, value, f"settings file {path}")
    return out


def from_env(env: Mapping[str, str]) -> Dict[str, Any]:
    """LBSYNC_HTTP_BIND=... -> {'http_bind': ...}; unknown LBSYNC_ names are errors (typos)."""
    out = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in ("LBSYNC_CONFIG",):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in FIELDS:
            raise SettingsError(f"environment: unknown setting {key}")
        out[name] = _coerce(name, value, f"environment {key}")
    return out


class _BoolFlag(argparse.Action):
    """`--events`, `--events false` (as the environment and YAML spell it) and `--no-events`."""

    def __init__(self, option_strings: List[str], dest: str, **kw: Any) -> None:
        negated = ["--no-" + o[2:] for o in option_strings]
        super().__init__(option_strings + negated, dest, nargs="?", metavar="true|false", **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: Optional[str] = None) -> None:
        if option_string and option_string.startswith("--no-"):
            if value is not None:
                parser.error(f"{option_string} takes no value")
            value = False
        setattr(namespace, self.dest, True if value is None else value)  # words checked by _coerce


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; defaults are None so unset flags do not override env or file."""
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        kind = f.metadata["kind"]
        help_text = f"{f.metadata['help']} (default: {_show(f.default)})"
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, default=None, action=_BoolFlag, help=help_text)
        elif kind == "list":
            parser.add_argument(flag, dest=f.name, default=None, action="append", help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def from_args(ns: argparse.Namespace) -> Dict[str, Any]:
    out = {}
    for name in FIELDS:
        value = getattr(ns, name, None)
        if value is None:
            continue
        if FIELDS[name].metadata["kind"] == "list":
            value = [part for item in value for part in item.split(",")]
        out[name] = _coerce(name, value, "flag --" + name.replace("_", "-"))
    return out


def load(*, args: Optional[argparse.Namespace] = None, config_file: Optional[str] = None,
         env: Optional[Mapping[str, str]] = None) -> Settings:
    """Merge defaults < file < env < flags into one frozen Settings."""
    env = os.environ if env is None else env
    config_file = config_file or env.get("LBSYNC_CONFIG")
    merged: Dict[str, Any] = {}
    if config_file:
        merged.update(from_file(config_file))
    merged.update(from_env(env))
    if args is not None:
        merged.update(from_args(args))
    return Settings(**merged)


def reference() -> List[Tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting: feeds docs/settings.md."""
    return [("--" + f.name.replace("_", "-"), ENV_PREFIX + f.name.upper(), _show(f.default),
             f.metadata["help"]) for f in dataclasses.fields(Settings)]
