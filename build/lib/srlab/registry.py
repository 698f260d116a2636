"""A small registry of named components (networks, paradigms, data modules, losses).

Configs name a registered component (``model: {name: edsr, params: {...}}``) and :mod:`srlab.build`
looks it up: no import paths in configs, no folder scanning. A duplicate name is a programming error;
an unknown name or keyword argument is a user error that lists the valid choices.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from srlab.errors import SrlabError, did_you_mean, unknown_choice

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    family: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name -> factory, with metadata (``family`` and free-form ``info``) for listings."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, family: str = "", **info: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, factory, family, dict(info))
            return factory

        return decorator

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_choice(self.kind, name, self._entries) from None

    def get(self, name: str) -> Callable[..., T]:
        return self.entry(name).factory

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword arguments a factory accepts (for validation and listings)."""
        sig = inspect.signature(self.get(name))
        return {k: p for k, p in sig.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k != "self"}

    def check_kwargs(self, name: str, kwargs: Mapping[str, Any], where: str = "") -> None:
        """Reject keyword arguments the factory does not take, naming the key and the valid ones."""
        params = self.parameters(name)
        for key in kwargs:
            if key not in params:
                loc = f"{where}.{key}" if where else key
                raise SrlabError(
                    f"unknown option '{loc}' for {self.kind} '{name}'{did_you_mean(key, params)}; "
                    f"valid: {', '.join(sorted(params)) or '(none)'}")

    def create(self, name: str, /, *, _where: str = "", **kwargs: Any) -> T:
        """Build ``name`` with ``kwargs``; unknown names/arguments and bad values become one-line errors."""
        factory = self.get(name)
        self.check_kwargs(name, kwargs, _where)
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as err:
            raise SrlabError(f"{self.kind} '{name}': {err}") from None
