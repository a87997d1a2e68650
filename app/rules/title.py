"""Title templates of rules: a subset of Jinja2 whose cost is bounded by its length.

Titles render in the ingest path, inside the transaction that stores the alert, so a
template cannot be stopped once it runs. Jinja's sandbox stops attribute tricks but not
work: ``{% for %}`` over ``range`` nests into billions of steps, ``9 ** 9 ** 9`` never
finishes and ``"x" | center(10 ** 9)`` allocates a gigabyte. The subset below has no
loops, no calls and no operator or filter that grows its input by a factor the template
chooses. Every filter's text output is also capped. Rendering time therefore grows only
with the template's length and the alert's size.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

# Longer than any title (titles are cut to 1,024 characters after rendering), so filters
# such as truncate or replace still see the whole text they work on.
MAX_FILTER_TEXT = 8192

ALLOWED_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "d",
        "default",
        "first",
        "float",
        "int",
        "join",
        "last",
        "length",
        "count",
        "lower",
        "replace",
        "reverse",
        "round",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
    }
)

# Node types a title may contain. Saving a rule whose title has any other node (loops,
# macros, calls, assignments, includes, filter blocks, ``**`` and ``%``) is a 422.
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Tuple,
    nodes.List,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
)

_NODE_WORDS = {
    nodes.For: "loops ({% for %})",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Call: "function and method calls",
    nodes.Assign: "assignments ({% set %})",
    nodes.AssignBlock: "assignments ({% set %})",
    nodes.FilterBlock: "filter blocks",
    nodes.With: "with blocks",
    nodes.Pow: "the ** operator",
    nodes.Mod: "the % operator",
    nodes.Dict: "dict literals",
}


class TitleTemplateError(ValueError):
    """A title template that is not valid Jinja2 or leaves the allowed subset."""


def _capped(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_FILTER_TEXT:
            return result[:MAX_FILTER_TEXT]
        return result

    return call


class _TitleEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        # On strings and lists ``*`` repeats them by a factor the template picks.
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            raise TitleTemplateError("* accepts numbers only in titles; join text with ~")
        return operator.mul(left, right)


def _environment() -> _TitleEnvironment:
    environment = _TitleEnvironment(undefined=ChainableUndefined, autoescape=False)
    environment.filters = {
        name: _capped(function)
        for name, function in environment.filters.items()
        if name in ALLOWED_FILTERS
    }
    return environment


_ENVIRONMENT = _environment()


def compile_title(source: str) -> Template:
    """Return the compiled template, or raise ``TitleTemplateError`` saying what to change."""
    try:
        tree = _ENVIRONMENT.parse(source)
    except TemplateError as exc:
        raise _syntax_error(exc) from exc
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            construct = _NODE_WORDS.get(type(node), type(node).__name__)
            raise TitleTemplateError(
                f"{construct} are not allowed in titles at line {node.lineno}; "
                "use variables, if/else, comparisons, ~ and the filters "
                + ", ".join(sorted(ALLOWED_FILTERS))
            )
        if isinstance(node, nodes.Mul) and any(
            isinstance(side, nodes.List | nodes.Tuple)
            or (isinstance(side, nodes.Const) and isinstance(side.value, str))
            for side in (node.left, node.right)
        ):
            # Text read from the alert is caught when the title renders.
            raise TitleTemplateError(
                f"* accepts numbers only in titles (line {node.lineno}); join text with ~"
            )
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TitleTemplateError(
                f"attributes starting with _ are not allowed in titles at line {node.lineno}"
            )
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            raise TitleTemplateError(
                f"filter {node.name!r} is not allowed in titles at line {node.lineno}; "
                "allowed: " + ", ".join(sorted(ALLOWED_FILTERS))
            )
    try:
        return _ENVIRONMENT.from_string(tree)
    except TemplateError as exc:
        # An unknown test name, for example, is found only when the tree compiles.
        raise _syntax_error(exc) from exc


def _syntax_error(exc: TemplateError) -> TitleTemplateError:
    line = getattr(exc, "lineno", None)
    return TitleTemplateError(f"template syntax error at line {line}: {exc.message}")
