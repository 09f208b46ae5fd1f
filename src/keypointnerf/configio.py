"""Typed dataclass configs saved as plain YAML (never pickled), with strict loading and ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError
from .fileio import atomic_write_text

T = TypeVar("T")


def to_dict(cfg: Any) -> Any:
    """A dataclass (nested) as plain dicts/lists/scalars, ready for ``yaml.safe_dump``."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config {where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except (UserError, TypeError, ValueError):
                continue
        raise UserError(f"config {where}: {value!r} does not fit {tp}")
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config {where}: expected a list, got {value!r}")
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config {where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config {where}: expected a number, got {value!r}")
        try:
            converted = tp(value)
        except (TypeError, ValueError):
            raise UserError(f"config {where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise UserError(f"config {where}: expected an integer, got {value!r}")
        return converted
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build ``cls`` from a mapping; an unknown key is an error that names it (typos never pass silently)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"config {where or cls.__name__}: unknown key(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(names))}")
    kwargs = {k: _convert(hints[k], v, f"{where + '.' if where else ''}{k}") for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied (values parsed as YAML scalars)."""
    data = to_dict(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"--set {item!r}: config has no key {key!r}")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise UserError(f"--set {item!r}: config has no key {key!r}")
        node[parts[-1]] = yaml.safe_load(raw)
    return from_dict(type(cfg), data)


def save_yaml(cfg: Any, path: str | os.PathLike) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_yaml(cls: type[T], path: str | os.PathLike) -> T:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return from_dict(cls, data, where=str(path))
