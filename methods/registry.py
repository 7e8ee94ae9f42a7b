"""The explainer registry: ``@register("name")`` makes an ``Explainer`` selectable by ``--methods``;
``--set METHOD.KEY=VALUE`` values are parsed by the type of the method's keyword and checked against
its ``VALUE_RANGES``; a list value is a sweep, one table row per value."""
from __future__ import annotations

import ast
import inspect
import itertools
import math
import types
import typing
from typing import Any

from methods.base import Explainer

_REGISTRY: dict[str, type[Explainer]] = {}


def control_methods() -> list[str]:
    """The registered control rows (``Explainer.control``), in registration order."""
    return [name for name, cls in _REGISTRY.items() if cls.control]


def register(name: str):
    """Class decorator: make an ``Explainer`` subclass selectable by ``name``."""

    def decorate(cls: type[Explainer]) -> type[Explainer]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"an explainer is already registered as {name!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_methods() -> list[str]:
    return list(_REGISTRY)


def hyperparameters_of(cls: type[Explainer]) -> dict[str, type | None]:
    """The constructor keywords of an explainer class and the type of each value (bool,
    int, float or str, from the annotation or else the default; None when neither tells).
    Keywords passed on through ``**kwargs`` to a parent class are included."""
    found: dict[str, type | None] = {}
    for klass in cls.__mro__:
        if klass in (Explainer, object) or "__init__" not in vars(klass):
            continue
        hints = typing.get_type_hints(klass.__init__)
        passes_on = False
        for parameter in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if parameter.kind is parameter.VAR_KEYWORD:
                passes_on = True
            elif parameter.kind is not parameter.VAR_POSITIONAL and parameter.name not in found:
                found[parameter.name] = _value_type(hints.get(parameter.name), parameter.default)
        if not passes_on:
            break
    return found


def _value_type(hint: Any, default: Any) -> type | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), None)
    for candidate in (hint, type(default)):
        if candidate in (bool, int, float, str):
            return candidate
    return None


def parse_hyperparameter(name: str, key: str, text: str) -> Any:
    """The value of ``--set NAME.KEY=TEXT``, converted to the type of the keyword's default.

    bool accepts true/false (also 1/0, yes/no, on/off); int and float their literals;
    "none" gives None; ``[a,b,...]`` gives a list, a sweep with one table row per value.

    Raises:
        ValueError: unknown method or keyword, or a value of the wrong type; the
            message names ``--set NAME.KEY`` and what is expected.
    """
    flag = f"--set {name}.{key}={text}"
    if name not in _REGISTRY:
        raise ValueError(f"{flag}: unknown method {name!r}; registered: {', '.join(available_methods())}")
    keywords = hyperparameters_of(_REGISTRY[name])
    if key not in keywords:
        known = f"its hyperparameters: {', '.join(keywords)}" if keywords else f"{name} has none: drop this --set"
        raise ValueError(f"{flag}: {name} has no hyperparameter {key!r}; {known}")
    kind = keywords[key]
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        values = [_convert(flag, kind, item.strip()) for item in text[1:-1].split(",") if item.strip()]
        if not values or len(set(map(str, values))) != len(values):
            raise ValueError(f"{flag}: a sweep needs at least one value and no value twice")
    else:
        values = [_convert(flag, kind, text)]
    low, high = _REGISTRY[name].VALUE_RANGES.get(key, (1, math.inf) if kind is int else (0.0, math.inf))
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
                math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{flag}: {value} is out of range; {name}.{key} takes a finite number in "
                             f"[{low}, {high}]".replace("inf]", "∞)"))
    return values if len(values) > 1 or text.startswith("[") else values[0]


def _convert(flag: str, kind: type | None, text: str) -> Any:
    if text.lower() == "none":
        return None
    if kind is bool:
        truth = {**dict.fromkeys(("true", "1", "yes", "on"), True), **dict.fromkeys(("false", "0", "no", "off"), False)}
        if text.lower() not in truth:
            raise ValueError(f"{flag}: expected true or false")
        return truth[text.lower()]
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{flag}: expected {'an integer' if kind is int else 'a number'}") from None
    if kind is str:
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_explainers(names: list[str], options: dict[str, dict[str, Any]]) -> list[Explainer]:
    """One explainer per name, or one per value where an option is a list (a sweep).

    ``build_explainers(["l2i"], {"l2i": {"rth": [0.2, 0.4]}})`` gives two L2I
    explainers labelled "l2i rth=0.2" and "l2i rth=0.4".
    """
    explainers = []
    for name in names:
        fixed = {k: v for k, v in options.get(name, {}).items() if not isinstance(v, list)}
        swept = {k: v for k, v in options.get(name, {}).items() if isinstance(v, list)}
        for values in itertools.product(*swept.values()):
            explainer = build_explainer(name, **fixed, **dict(zip(swept, values)))
            explainer.label = " ".join([name, *(f"{k}={v}" for k, v in zip(swept, values))])
            explainers.append(explainer)
    return explainers


def build_explainer(name: str, **hyperparameters: Any) -> Explainer:
    """Instantiate a registered explainer.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(available_methods())}")
    return _REGISTRY[name](**hyperparameters)
