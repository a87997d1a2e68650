"""The ingest formats whose payloads the explain endpoint can read.

Every module in ``app.ingest.parsers`` that defines ``parse(body, limits)`` is a
format named after the module, so a parser added for a new sender is explainable
without a change here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from functools import cache

from app.incidents.events import AlertEvent
from app.ingest import parsers
from app.ingest.parsers.common import IngestLimits

Parser = Callable[[bytes, IngestLimits], list[AlertEvent]]


@cache
def available_formats() -> dict[str, Parser]:
    formats: dict[str, Parser] = {}
    for module_info in pkgutil.iter_modules(parsers.__path__):
        if module_info.name.startswith("_") or module_info.name == "common":
            continue
        module = importlib.import_module(f"{parsers.__name__}.{module_info.name}")
        parse = getattr(module, "parse", None)
        if callable(parse) and _takes_body_and_limits(parse):
            formats[module_info.name] = parse
    return formats


def _takes_body_and_limits(function: Callable[..., object]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [p for p in parameters if p.default is inspect.Parameter.empty]
    return len(parameters) >= 2 and len(required) <= 2
