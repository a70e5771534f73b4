"""Detector registry: detectors are found through the `warden.detectors` entry point group.

Warden's own detectors are declared there too (see pyproject.toml), so third-party
plugins and built-ins are found the same way. Names must be unique and must equal the
class's declared `name`: a policy refers to detectors by name, so ambiguity is an error.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from warden.detectors.base import Detector

ENTRY_POINT_GROUP = "warden.detectors"


class RegistryError(LookupError):
    pass


@cache
def _discover() -> dict[str, str]:
    """name -> 'module:attr', without importing the detectors (some are heavy)."""
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name] != ep.value:
            raise RegistryError(
                f"detector name {ep.name!r} is declared twice: {found[ep.name]} and {ep.value}; names must be unique"
            )
        found[ep.name] = ep.value
    return found


_extra: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Register a detector class in-process (tests, notebooks). Rejects duplicate names."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{cls.__qualname__} must declare a non-empty `name` class attribute")
    if name in _extra or name in _discover():
        raise RegistryError(f"detector name {name!r} is already registered")
    _extra[name] = cls
    return cls


def available() -> list[str]:
    return sorted({*_discover(), *_extra})


@cache
def _load(name: str, target: str) -> type[Detector]:
    module_name, _, attr = target.partition(":")
    import importlib

    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"detector type {name!r} ({target}) could not be loaded: {exc}; "
                            "is the package that provides it installed?") from exc
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise RegistryError(f"entry point {name!r} -> {target} is not a Detector subclass")
    if cls.name != name:
        raise RegistryError(f"entry point {name!r} -> {target} declares name {cls.name!r}; they must match")
    return cls


def get(name: str) -> type[Detector]:
    if name in _extra:
        return _extra[name]
    found = _discover()
    if name not in found:
        raise RegistryError(f"unknown detector type {name!r}; available: {', '.join(available()) or 'none'}")
    return _load(name, found[name])
