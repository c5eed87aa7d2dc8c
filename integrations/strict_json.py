"""Reading a webhook body as JSON the store can keep, or saying precisely why not.

Python's reader is more lenient than the JSON the store writes: it accepts ``NaN`` and
``Infinity``, lone surrogates such as ``"\\ud800"`` (valid escapes, invalid text) and any
nesting its stack allows. A body like that would pass the door and then fail to be stored,
and the "retry later" answer would make the sender repeat it forever. So everything the
store or the flows would refuse is refused here, with the reason, before anything is kept.
"""

from __future__ import annotations

import json
from typing import Any

from gates.store.audit import stored_json

MAX_DEPTH = 100
"""Deepest nesting accepted: real webhooks stay under 20; the flows' models fail near 250."""


class Malformed(ValueError):
    """The body is not JSON the store can keep; the message says what is wrong."""


def _no_constant(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON value")


def loads(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``, or :class:`Malformed`."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Malformed(str(exc)) from None
    except RecursionError:
        raise Malformed(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise Malformed("expected an object")
    return value


def storable(payload: Any) -> str:
    """``payload`` as the JSON text the store keeps, or :class:`Malformed` if the store could
    not write it and read it back, whichever reader produced it (a Slack form carries its JSON
    in a field). Encoded here once: the inbox stores this text."""
    containers = (dict, list)
    stack: list[tuple[Any, int]] = [(payload, 1)] if isinstance(payload, containers) else []
    while stack:  # iterative: the depth is exactly what must not exhaust the stack
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Malformed(f"nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, containers))
    try:
        text = stored_json(payload)
        text.encode()
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise Malformed(f"{bad} is not valid Unicode text (a lone surrogate)") from None
    except ValueError as exc:  # NaN or Infinity from a reader other than loads()
        raise Malformed(f"{exc} (NaN or Infinity is not a JSON value)") from None
    return text
