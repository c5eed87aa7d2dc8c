"""What a built-in check kind is, and the registry the loader and evaluator share.

A kind is a parameter model (validated when the policy loads, so a typo in ``with`` is a
load error with a line number, not a runtime surprise), a pure function from parameters and
evidence to a :class:`Finding`, and the evidence paths it reads (approvals are bound to
those). One kind per module keeps each readable next to its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict

from gates.evidence import Evidence, PathKey


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=Params)


class Location(NamedTuple):
    """A line in a file of the project's repository, for check-run annotations."""

    path: str
    line: int = 1


class Finding(NamedTuple):
    """What a kind found. A tuple, not a frozen dataclass: one is made at every check of
    every evaluation, and a frozen dataclass sets each field through ``object.__setattr__``."""

    ok: bool
    expected: str
    found: str
    source: str | None = None
    location: Location | None = None


@dataclass(frozen=True)
class CheckKind(Generic[P]):
    name: str
    summary: str
    params: type[P]
    run: Callable[[P, Evidence], Finding]
    reads: Callable[[P], list[PathKey]]


KINDS: dict[str, CheckKind] = {}


def register(
    name: str, summary: str, params: type[P], reads: Callable[[P], list[PathKey]]
) -> Callable[[Callable[[P, Evidence], Finding]], Callable[[P, Evidence], Finding]]:
    def decorate(run: Callable[[P, Evidence], Finding]) -> Callable[[P, Evidence], Finding]:
        KINDS[name] = CheckKind(name, summary, params, run, reads)
        return run

    return decorate


def listing(items: list[str], empty: str = "none") -> str:
    """``a, b and c`` — the shape of every expected/found text."""
    if not items:
        return empty
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
