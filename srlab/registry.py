"""A small registry of named components (networks, paradigms, data modules, losses).

Configs name a registered component (``model: {name: edsr, params: {...}}``) and :mod:`srlab.build`
looks it up: no import paths in configs, no folder scanning. A duplicate name is a programming error;
an unknown name or keyword argument is a user error that lists the valid choices, and so is a value of the
wrong type or one the constructor refuses on purpose (:class:`~srlab.errors.OptionError`); any other
exception from a constructor is a bug in srlab and keeps its traceback.
"""
from __future__ import annotations

import collections.abc
import importlib
import importlib.metadata
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from srlab.errors import OptionError, SrlabError, did_you_mean, unknown_choice

T = TypeVar("T")
#: What a network's ``forward`` returns (``Card.output``).
NETWORK_OUTPUTS = ("image", "score")


@dataclass(frozen=True)
class Card:
    """What a registered component is, typed: listings (``srlab list``), docs/models.md, exports and the
    registry-wide tests read it. A key that is not a field here fails at registration.

    ``family``: the survey family (networks) or data family (data kinds); ``paper``: the citation;
    ``learned``: has trainable weights; ``scales``: upsampling factors it supports; ``published_params``
    and ``paper_counts``: the paper's parameter counts (checked by tests/models/test_param_counts.py);
    ``data``: for paradigms, the data families they train on; ``inputs``: for networks, what one input
    is — ``single`` (an image of C channels, every data family but ``multiframe``) and/or ``multiframe``
    (T frames of one field as channels, with their shifts: data family ``multiframe``), checked against
    the data by :func:`srlab.build.check_paradigm_data`; ``output``: for networks, what ``forward``
    returns — ``image`` (the SR contract, ``(N, C, h, w) -> (N, C, s·h, s·w)``, also density maps) or
    ``score`` (one number per image, ``(N, C, h, w) -> (N,)``: a no-reference rating network, which the
    SR contract and its registry-wide tests do not apply to)."""

    family: str = ""
    paper: str = ""
    learned: bool = True
    scales: tuple[int, ...] = (2,)
    published_params: str | None = None
    paper_counts: tuple[Any, ...] = ()
    data: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ("single",)
    output: str = "image"

    def __post_init__(self) -> None:
        if self.output not in NETWORK_OUTPUTS:
            raise TypeError(f"Card.output must be one of {', '.join(NETWORK_OUTPUTS)}, got {self.output!r}")
        if not all(isinstance(s, int) and s >= 1 for s in self.scales):
            raise TypeError(f"Card.scales must be integers >= 1, got {self.scales!r}")
        if not self.inputs or set(self.inputs) - {"single", "multiframe"}:
            raise TypeError(f"Card.inputs must hold 'single' and/or 'multiframe', got {self.inputs!r}")
        for name in ("scales", "paper_counts", "data", "inputs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    card: Card = field(default_factory=Card)

    @property
    def family(self) -> str:
        return self.card.family

    @property
    def info(self) -> Mapping[str, Any]:
        """The card as a read-only mapping (``entry.info["paper"]``)."""
        return types.MappingProxyType({f.name: getattr(self.card, f.name) for f in fields(Card)})


class Registry(Generic[T]):
    """Name -> factory with a typed :class:`Card`.

    ``modules`` are the modules whose import registers srlab's own entries; they are imported on the
    first lookup (no import-order tricks), together with every installed package's entry points of
    group ``plugins`` (``[project.entry-points."srlab.models"] mynet = "mypkg.models"``): a package of
    one's own adds models without editing srlab."""

    def __init__(self, kind: str, modules: tuple[str, ...] = (), plugins: str | None = None):
        self.kind, self.modules, self.plugins = kind, tuple(modules), plugins
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # before importing: the modules register into this registry
        for module in self.modules:
            importlib.import_module(module)
        if self.plugins:
            for point in importlib.metadata.entry_points(group=self.plugins):
                point.load()

    def register(self, name: str, *, family: str = "", **card: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        made = Card(family=family, **card)

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name].factory is not factory:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, factory, made)
            return factory

        return decorator

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def where(self) -> str:
        """Where entries come from, for the unknown-name message."""
        places = ["the modules listed in srlab/registry.py"] if self.modules else []
        if self.plugins:
            places.append(f"packages' '{self.plugins}' entry points")
        return " and by ".join(places)

    def entry(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            err = unknown_choice(self.kind, name, self._entries)
            raise SrlabError(f"{err}; {self.kind}s are registered by {self.where()}") from None

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

    def check_types(self, name: str, kwargs: Mapping[str, Any], where: str = "") -> None:
        """Reject a value whose type the factory's annotation rules out (``num_blocks: int`` given
        ``'8x'``), naming the key: configs hold untyped ``params`` mappings, so this is where a typo in a
        value is caught before the constructor fails on it in some other way."""
        hints = _type_hints(self.get(name))
        for key, value in kwargs.items():
            expected = hints.get(key)
            if expected is not None and not _matches(value, expected):
                loc = f"{where}.{key}" if where else key
                raise SrlabError(f"{loc}={value!r}: {self.kind} '{name}' takes {_describe(expected)} here")

    def create(self, name: str, /, *, _where: str = "", **kwargs: Any) -> T:
        """Build ``name`` with ``kwargs``. Unknown names and arguments, values of the wrong type and the
        values a constructor refuses on purpose (:class:`~srlab.errors.OptionError`) become one-line
        errors; anything else a constructor raises is a bug and keeps its traceback."""
        factory = self.get(name)
        self.check_kwargs(name, kwargs, _where)
        self.check_types(name, kwargs, _where)
        try:
            return factory(**kwargs)
        except OptionError as err:
            raise SrlabError(f"{self.kind} '{name}': {err}") from None


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001  an annotation that cannot be evaluated here: no type checks
        return {}


_NUMBERS = {float: (int, float), int: (int,), bool: (bool,), str: (str,)}


def _matches(value: Any, expected: Any) -> bool:
    """Whether ``value`` (from YAML: numbers, strings, lists, mappings) fits ``expected``; only the
    plain types a config can hold are judged, anything else (modules, callables) passes."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected in _NUMBERS:
        if isinstance(value, bool) and expected is not bool:
            return False
        return isinstance(value, _NUMBERS[expected])
    if origin in (tuple, list, collections.abc.Sequence) or expected in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        if origin is tuple and args and Ellipsis not in typing.get_args(expected) and len(args) != len(value):
            return False
        return all(_matches(v, args[0] if len(args) == 1 or Ellipsis in typing.get_args(expected) else a)
                   for v, a in zip(value, args or [Any] * len(value))) if args else True
    if expected is typing.Any:
        return True
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    return True


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(expected))
    if expected is type(None):
        return "null"
    if expected in (int, float, bool, str):
        return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}[expected]
    if origin in (tuple, list, collections.abc.Sequence):
        return "a list"
    return str(expected)


# --------------------------------------------------------------------------------------------------
# srlab's registries, and the modules that fill them (imported on first use).
# --------------------------------------------------------------------------------------------------
NETWORKS: Registry[Any] = Registry("model", modules=(
    "srlab.models.attention", "srlab.models.classical", "srlab.models.dense", "srlab.models.linear",
    "srlab.models.attngan", "srlab.models.localization", "srlab.models.multiframe", "srlab.models.physics",
    "srlab.models.quality", "srlab.models.residual", "srlab.models.unet"),
    plugins="srlab.models")
DISCRIMINATORS: Registry[Any] = Registry("discriminator", modules=("srlab.models.discriminators",),
                                         plugins="srlab.discriminators")
DEGRADERS: Registry[Any] = Registry("degrader", modules=("srlab.models.degradation",), plugins="srlab.degraders")
LOSSES: Registry[Any] = Registry("loss", modules=("srlab.paradigms.losses",), plugins="srlab.losses")
PARADIGMS: Registry[Any] = Registry("paradigm", modules=(
    "srlab.paradigms.adaptation", "srlab.paradigms.attngan", "srlab.paradigms.degradation_gan", "srlab.paradigms.gan",
    "srlab.paradigms.localization", "srlab.paradigms.quality", "srlab.paradigms.residual", "srlab.paradigms.supervised"),
    plugins="srlab.paradigms")
DATAMODULES: Registry[Any] = Registry("data kind", modules=("srlab.data.datamodules", "srlab.data.multiframe",
                                                             "srlab.data.multiscale", "srlab.data.quality",
                                                             "srlab.smlm.datamodule"),
                                      plugins="srlab.data")
