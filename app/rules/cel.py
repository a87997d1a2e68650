"""CEL expressions (cel-python) as a rule condition, compiled once and evaluated per alert."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELUnsupportedError

# The names an expression may use; each is documented in docs/rules.md.
VARIABLES = frozenset(
    {
        "labels",
        "details",
        "severity",
        "severity_raw",
        "source",
        "summary",
        "dedup_key",
        "action",
        "integration",
        "integration_kind",
        "service",
        "service_id",
        "now",
    }
)
# Macros whose first argument binds a variable, as in labels.exists(k, k.startsWith("x")).
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
MAX_EXPRESSION_LENGTH = 4096
# The deepest parse tree accepted. cel-python transpiles and evaluates the tree
# recursively, and near depth 1,300 (about 130 nested brackets) it exceeds Python's
# recursion limit. Each level of brackets adds 10 levels to the tree and each operator in
# a chain such as a || b || c adds 1 or 2, so 400 allows 38 nested brackets.
MAX_TREE_DEPTH = 400
_TOO_DEEP = "nested too deeply: use fewer nested brackets or split the condition into several rules"
# The maximum number of elements that the macros (all, exists, exists_one, map, filter)
# of one evaluation may visit, counted across nested macros. Macros do not stop early, so nested
# ones multiply: six nested .all() over ten-element lists visit a million elements. One
# step took 16 to 55 µs on a 2-core test machine, depending on the macro's body, so
# 2,000 steps take 30 to 110 ms there.
MAX_MACRO_STEPS = 2_000
# The maximum number of elements one evaluation may touch besides macro steps: the
# elements that `x in list` and comparisons of lists and maps scan, and the elements of
# lists, maps and strings that macro steps build. These scale with what the sender sent,
# so the macro steps alone do not bound them. A scan of a million elements took a few
# tenths of a second on a 2-core test machine.
MAX_ELEMENT_WORK = 1_000_000

# cel-python logs every evaluation error at ERROR level. For a rule an error only means
# "no match", and the explain endpoint reports it, so the library's own lines are noise.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

# The compiled runner is about five times faster than the interpreter, but it stores the
# activation in a module global while it runs, so evaluations must not overlap between
# threads (replays run in a worker thread beside the ingest path).
_EVALUATION_LOCK = threading.Lock()
_ENVIRONMENT = celpy.Environment(runner_class=celpy.CompiledRunner)


class _BudgetExceeded(BaseException):
    """Raised inside an evaluation that used up MAX_MACRO_STEPS or MAX_ELEMENT_WORK.

    A BaseException, because cel-python turns the usual exceptions raised inside a macro
    into CEL error values and then visits the remaining elements.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Budget:
    """The budget left to the running evaluation; _EVALUATION_LOCK serializes evaluations."""

    steps = MAX_MACRO_STEPS
    work = MAX_ELEMENT_WORK

    @classmethod
    def reset(cls) -> None:
        cls.steps = MAX_MACRO_STEPS
        cls.work = MAX_ELEMENT_WORK

    @classmethod
    def charge_work(cls, value: Any) -> None:
        if isinstance(value, list | dict | str | bytes):
            cls.work -= len(value)
            if cls.work < 0:
                raise _BudgetExceeded(
                    f"the expression touched more than {MAX_ELEMENT_WORK:,} list, map or text "
                    "elements; scan smaller lists or move the check to a matcher"
                )


def _metered(macro: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a cel-python macro so that each element it visits costs one step, and what
    the step builds costs work."""

    def run(activation: Any, bind_variable: str, expression: Any, generator: Any) -> Any:
        def step(nested_activation: Any) -> Any:
            _Budget.steps -= 1
            if _Budget.steps < 0:
                raise _BudgetExceeded(
                    f"the macros visited more than {MAX_MACRO_STEPS:,} elements; nest fewer "
                    "all/exists/map/filter calls or iterate over smaller lists"
                )
            result = expression(nested_activation)
            _Budget.charge_work(result)
            return result

        return macro(activation, bind_variable, step, generator)

    return run


def _scanning(operation: Callable[..., Any], *, scanned: int) -> Callable[..., Any]:
    """Wrap a cel-python operator so that the list or map it scans costs work."""

    def run(*arguments: Any) -> Any:
        _Budget.charge_work(arguments[scanned])
        return operation(*arguments)

    return run


# Transpiled expressions look these functions up on the module at each call, so replacing
# them there meters every compiled program. Tests check that both limits still apply.
for _name in ("macro_all", "macro_exists", "macro_exists_one", "macro_map", "macro_filter"):
    setattr(celpy.evaluation, _name, _metered(getattr(celpy.evaluation, _name)))
celpy.evaluation.operator_in = _scanning(celpy.evaluation.operator_in, scanned=1)
celpy.evaluation.bool_eq = _scanning(celpy.evaluation.bool_eq, scanned=0)
celpy.evaluation.bool_ne = _scanning(celpy.evaluation.bool_ne, scanned=0)


class CelInputs:
    """The variables of one alert, converted to CEL values on first use and then kept.

    Every CEL rule evaluated for the alert shares one instance, so a large payload is
    converted once per alert, and only the variables some expression reads.
    """

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._variables = variables
        self._converted: dict[str, Any] = {}

    def activation(self, names: frozenset[str]) -> dict[str, Any]:
        for name in names - self._converted.keys():
            self._converted[name] = _to_cel(self._variables[name])
        return {name: self._converted[name] for name in names}


class CelError(ValueError):
    """An expression that does not compile; line and column are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" at line {line} column {column}" if line is not None else ""
        super().__init__(f"{message}{where}")
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class CelResult:
    matched: bool
    # Why the expression did not give a boolean, when it did not.
    error: str | None = None


class CelCondition:
    """A compiled expression; ``evaluate`` returns whether it is true for one alert."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise CelError(f"longer than {MAX_EXPRESSION_LENGTH} characters")
        try:
            tree = _ENVIRONMENT.compile(text)
        except CELParseError as exc:
            first_line = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
            raise CelError(f"syntax error: {first_line}", exc.line, exc.column) from exc
        except RecursionError as exc:
            raise CelError(_TOO_DEEP) from exc
        _check_depth(tree)
        self.names = _check_names(tree)
        try:
            self._program = _ENVIRONMENT.program(tree)
        except (CELEvalError, CELUnsupportedError, SyntaxError) as exc:
            raise CelError(f"cannot compile: {exc}") from exc
        except RecursionError as exc:
            raise CelError(_TOO_DEEP) from exc

    def evaluate(self, variables: Mapping[str, Any] | CelInputs) -> CelResult:
        inputs = variables if isinstance(variables, CelInputs) else CelInputs(variables)
        try:
            with _EVALUATION_LOCK:
                _Budget.reset()
                value = self._program.evaluate(inputs.activation(self.names))
        except _BudgetExceeded as exc:
            return CelResult(False, f"evaluation error: {exc.reason}")
        except (CELEvalError, CELUnsupportedError) as exc:
            return CelResult(False, f"evaluation error: {_describe_error(exc)}")
        except RecursionError:
            return CelResult(False, f"evaluation error: {_TOO_DEEP}")
        if isinstance(value, celtypes.BoolType | bool):
            return CelResult(bool(value))
        return CelResult(False, f"returned {type(value).__name__}, not a bool")


def _describe_error(exc: Exception) -> str:
    if not exc.args:
        return type(exc).__name__
    message = str(exc.args[0])
    # The compiled runner wraps the real error: ("evaluation error", type, (message, ...)).
    if message == "evaluation error" and len(exc.args) > 2 and exc.args[2]:
        inner = exc.args[2][0]
        message = str(inner.args[0]) if isinstance(inner, Exception) and inner.args else str(inner)
    return message


def _to_cel(value: Any) -> Any:
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    return json_to_cel(value)


def _check_depth(tree: lark.Tree[Any]) -> None:
    """Reject a parse tree deeper than MAX_TREE_DEPTH, measured without recursion."""
    pending: list[tuple[Any, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_TREE_DEPTH:
            raise CelError(
                f"nested too deeply: the parse tree is deeper than {MAX_TREE_DEPTH} levels "
                "(about 38 nested brackets). Use fewer nested brackets or split the condition "
                "into several rules"
            )
        if isinstance(node, lark.Tree):
            pending.extend((child, depth + 1) for child in node.children)


def _check_names(tree: lark.Tree[Any]) -> frozenset[str]:
    """Return the variables the expression reads; reject names that are neither variables
    nor bound by a macro, with their position."""
    bound: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and len(node.children) >= 3:
            method = node.children[1]
            arguments = node.children[2]
            if str(method) in _BINDING_MACROS and isinstance(arguments, lark.Tree):
                first = next(iter(arguments.children), None)
                name = _plain_identifier(first)
                if name is not None:
                    bound.add(name)
    unknown = []
    for node in tree.iter_subtrees():
        if node.data != "ident":
            continue
        name = str(node.children[0])
        if name not in VARIABLES and name not in bound:
            line = node.meta.line if not node.meta.empty else None
            column = node.meta.column if not node.meta.empty else None
            unknown.append((line or 0, column or 0, name, line, column))
    if unknown:
        _, _, name, line, column = min(unknown)
        known = ", ".join(sorted(VARIABLES))
        raise CelError(f"unknown variable {name!r}; use one of {known}", line, column)
    return frozenset(
        str(node.children[0])
        for node in tree.iter_subtrees()
        if node.data == "ident" and str(node.children[0]) in VARIABLES
    )


def _plain_identifier(node: Any) -> str | None:
    """Return the name when ``node`` is an expression that is just an identifier."""
    while isinstance(node, lark.Tree) and node.data != "ident" and len(node.children) == 1:
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "ident":
        return str(node.children[0])
    return None
