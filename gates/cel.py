"""CEL, the expression language of gate checks, through the official CEL runtime.

Expressions are compiled once per distinct text (the loader compiles every expression when
it validates a policy set, so evaluation only ever runs compiled programs). Evidence roots
are declared dynamic: the evidence model is checked by pydantic, and CEL's own runtime
errors (a missing key, a type mismatch) become ``error`` outcomes, never silent passes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from cel_expr_python import cel

from gates.evidence import ROOTS

_EVIDENCE_ENV = cel.NewEnv(variables={root: cel.Type.DYN for root in ROOTS})
_EVENT_ENV = cel.NewEnv(variables={"event": cel.Type.DYN})
_ENVS = {"evidence": _EVIDENCE_ENV, "event": _EVENT_ENV}
_ERROR = cel.Type.ERROR
_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*")


class CelCompileError(ValueError):
    """A CEL expression that does not compile; ``line``/``column`` are 1-based in the text."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class CelOutcome(NamedTuple):
    """A value, or the error CEL raised instead (a tuple: made at every evaluation)."""

    value: Any = None
    error: str | None = None


@lru_cache(maxsize=4096)
def compile_expression(text: str, env: str = "evidence") -> cel.Expression:
    """Compile (cached): raises :class:`CelCompileError` with CEL's own message and caret."""
    try:
        return _ENVS[env].compile(text)
    except RuntimeError as exc:
        raw = str(exc).removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]")
        match = _POSITION.search(raw)
        line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        message = _POSITION.sub("", raw.removeprefix("ERROR: "), count=1)
        raise CelCompileError(message.strip(), line, column) from None


def result_type(compiled: cel.Expression) -> str:
    """What a compiled expression gives, as CEL names it in lower case (``bool``, ``int``,
    ``list<int>``); ``dyn`` when it depends on the (dynamic) evidence."""
    return str(compiled.return_type()).lower()


def bind(data: dict[str, Any], env: str = "evidence") -> cel.Activation:
    """Variables bound once for many expressions: far cheaper than passing the data to each."""
    return _ENVS[env].Activation(data)


def run(text: str, bound: cel.Activation, env: str = "evidence") -> CelOutcome:
    """Evaluate a compiled expression; a CEL runtime error comes back as ``error``."""
    result = compile_expression(text, env).eval(bound)
    if result.type() == _ERROR:
        return CelOutcome(None, str(result.value()))
    return CelOutcome(result.plain_value())


_TRUE, _FALSE = CelOutcome(True), CelOutcome(False)


def run_bool(text: str, bound: cel.Activation, env: str = "evidence") -> CelOutcome:
    """Evaluate a condition: an error, or a value that is not a bool, comes back as ``error``.

    A Python bool is never what an error converts to (that is its message), so a bool answer
    needs no ``type()``: asking the C++ value for its type costs as much again as converting
    it, on every check and ``if`` of every evaluation.
    """
    result = compile_expression(text, env).eval(bound)
    value = result.plain_value()
    if value is True or value is False:
        return _TRUE if value else _FALSE
    if result.type() == _ERROR:
        return CelOutcome(None, str(result.value()))
    return CelOutcome(None, f"expression gave {value!r}, not true or false")
