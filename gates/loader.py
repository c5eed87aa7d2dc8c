"""Load a directory of policy YAML into a :class:`PolicySet`, or say precisely what is wrong.

Every mistake in every file is reported at once as ``path:line:col: message``, pointing at
the YAML node that is wrong, so a team lead fixes a policy in one pass. Loading never raises
for a bad file: a broken policy must neither crash the engine nor silently pass.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from gates import cel
from gates.checks import KINDS
from gates.policy import (
    Check,
    Gate,
    Lifecycle,
    People,
    PolicySet,
    PolicyTest,
    Project,
    Roles,
)
from gates.yaml_problem import describe

DOCUMENT_KINDS: dict[str, type[BaseModel]] = {
    "Lifecycle": Lifecycle,
    "Gate": Gate,
    "Roles": Roles,
    "People": People,
    "Project": Project,
    "PolicyTest": PolicyTest,
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class PolicyError:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class PolicyLoadError(Exception):
    """Raised by :func:`load_or_raise`; carries every error, already sorted."""

    def __init__(self, errors: list[PolicyError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


@dataclass
class Document:
    """One validated YAML document and where each of its nodes sits in its file."""

    model: Any  # None when the document did not validate (its errors are reported)
    path: str
    positions: dict[Loc, tuple[int, int]]
    key_positions: dict[Loc, tuple[int, int]]
    quoted: set[Loc]
    block: dict[Loc, str]  # block scalars and their style: "|" keeps lines, ">" folds them
    source: list[str]
    raw: dict[str, Any] = field(default_factory=dict)

    def at(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the node at ``loc``, or of its nearest existing ancestor."""
        loc = tuple(loc)
        while loc:
            table = self.key_positions if key and loc in self.key_positions else self.positions
            if loc in table:
                line, col = table[loc]
                return line + 1, col + 1
            loc = loc[:-1]
        line, col = self.positions.get((), (0, 0))
        return line + 1, col + 1

    def error(self, loc: Loc, message: str, *, key: bool = False) -> PolicyError:
        line, col = self.at(loc, key=key)
        return PolicyError(self.path, line, col, message)


@dataclass
class LoadResult:
    policies: PolicySet | None
    tests: list[Document] = field(default_factory=list)
    errors: list[PolicyError] = field(default_factory=list)


MAX_NODES = 100_000
"""Nodes a policy file may have once its aliases are expanded. A few aliases of aliases (a
"billion laughs") expand into billions of nodes: minutes and gigabytes, for one bad push."""

_CORE_TAG = "tag:yaml.org,2002:"


class _TooManyNodes(Exception):
    def __init__(self, loc: Loc) -> None:
        self.loc = loc


class _Plain:
    """ruamel's round-trip tree as plain Python values, recording where each node is.

    One per file: the node budget covers all its documents. Problems only this walk sees
    (tags) are collected in ``errors``; an alias bomb raises :class:`_TooManyNodes`.
    """

    def __init__(self) -> None:
        self.nodes = 0
        self.errors: list[PolicyError] = []

    def __call__(self, node: Any, loc: Loc, doc: Document) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooManyNodes(loc)
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag:
            shown = "!!" + tag.removeprefix(_CORE_TAG) if tag.startswith(_CORE_TAG) else tag
            self.errors.append(
                doc.error(loc, f"tags such as {shown} are not supported: write the plain value")
            )
        if isinstance(node, CommentedMap):
            doc.positions.setdefault(loc, (node.lc.line, node.lc.col))
            out = {}
            for key, value in node.items():
                child = (*loc, str(key))
                doc.key_positions[child], doc.positions[child] = _key_at(node, key)
                out[str(key)] = self(value, child, doc)
            return out
        if isinstance(node, CommentedSeq):
            doc.positions.setdefault(loc, (node.lc.line, node.lc.col))
            items = []
            for index, value in enumerate(node):
                doc.positions[(*loc, index)] = node.lc.item(index)
                items.append(self(value, (*loc, index), doc))
            return items
        if isinstance(node, TaggedScalar):
            return node.value  # reported above; the value keeps other errors meaningful
        if isinstance(node, SingleQuotedScalarString | DoubleQuotedScalarString):
            doc.quoted.add(loc)
        if isinstance(node, LiteralScalarString | FoldedScalarString):
            doc.block[loc] = "|" if isinstance(node, LiteralScalarString) else ">"
        if isinstance(node, str):
            return str(node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, date):
            return node.isoformat()
        self.errors.append(
            doc.error(
                loc, "tags such as !!set or !!binary are not supported: write the plain value"
            )
        )
        return None


def _key_at(node: CommentedMap, key: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a key and its value are, also for a key merged in with ``<<:`` (ruamel keeps
    those positions on the merged mapping, not on the one that merges it)."""
    if key in (node.lc.data or {}):
        return node.lc.key(key), node.lc.value(key)
    for merged in getattr(node, "merge", ()):
        if key in merged:
            return _key_at(merged, key)
    here = (node.lc.line, node.lc.col)
    return here, here


def _model_keys(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every key any policy model accepts: the vocabulary for "did you mean"."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(info.alias or name)
        for arg in _type_args(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _model_keys(arg, seen)
    return keys


def _type_args(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _type_args(arg)


def _suggest(word: str, vocabulary: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, sorted(vocabulary), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _pydantic_errors(
    exc: ValidationError, doc: Document, prefix: Loc, vocabulary: set[str]
) -> list[PolicyError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            errors.append(
                doc.error(loc, f"unknown key '{key}'{_suggest(key, vocabulary)}", key=True)
            )
        elif kind == "missing":
            errors.append(doc.error(loc[:-1], f"missing required key '{loc[-1]}'"))
        elif kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
            if loc and isinstance(loc[-1], str):
                message = f"{'.'.join(map(str, loc[len(prefix) :]))}: {message}"
            errors.append(doc.error(loc, message))
        else:
            where = ".".join(str(p) for p in loc[len(prefix) :]) or "document"
            got = err.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            errors.append(doc.error(loc, f"{where}: {err['msg']}{shown}"))
    return errors


def _read_documents(file: Path, shown: str) -> tuple[list[Document], list[PolicyError], bool]:
    """The file's documents (valid or not) and its errors; the flag says whether a document
    was lost entirely (unreadable, not YAML, unknown kind), so its names are unknown."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        source = file.read_text(encoding="utf-8")
        raw_docs = list(yaml.load_all(io.StringIO(source)))
    except YAMLError as exc:  # also a ReaderError: a NUL or ESC byte in the file
        problem = describe(exc, source)
        message = f"YAML syntax error: {problem.message}"
        return [], [PolicyError(shown, problem.line, problem.col, message)], True
    except RecursionError:
        return [], [PolicyError(shown, 1, 1, "YAML nested too deeply to read")], True
    except (OSError, UnicodeDecodeError) as exc:
        return [], [PolicyError(shown, 1, 1, f"cannot read file: {exc}")], True
    docs, errors, lost = [], [], False
    plain = _Plain()
    for number, raw in enumerate(raw_docs):
        if raw is None:
            continue
        doc = Document(None, shown, {}, {}, set(), {}, source.splitlines())
        try:
            data = plain(raw, (), doc)
        except _TooManyNodes as exc:
            message = f"too many nodes after expanding aliases (limit {MAX_NODES})"
            errors.append(doc.error(exc.loc, message))
            return docs, errors + plain.errors, True
        except RecursionError:
            errors.append(doc.error((), "YAML nested too deeply to read"))
            lost = True
            continue
        if not isinstance(data, dict):
            if () not in doc.positions:  # a scalar document: ruamel keeps no position for it
                doc.positions[()] = _document_start(source, number)
            errors.append(doc.error((), "a policy document must be a mapping with a 'kind'"))
            lost = True
            continue
        doc.raw = data
        kind = data.get("kind")
        model = DOCUMENT_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            kinds = ", ".join(DOCUMENT_KINDS)
            what = (
                f"unknown kind {kind!r}{_suggest(str(kind), set(DOCUMENT_KINDS))}"
                if kind
                else "no 'kind'"
            )
            errors.append(doc.error(("kind",), f"{what}: expected one of {kinds}"))
            lost = True
            continue
        try:
            doc.model = model.model_validate(data)
        except ValidationError as exc:
            errors += _pydantic_errors(exc, doc, (), _model_keys(model))
        docs.append(doc)
    return docs, errors + plain.errors, lost


def _document_start(source: str, number: int) -> tuple[int, int]:
    """0-based (line, col) where document ``number`` of ``source`` starts its content."""
    nodes = YAML(typ="rt").compose_all(io.StringIO(source))
    node = next(itertools.islice(nodes, number, None), None)
    return (node.start_mark.line, node.start_mark.column) if node is not None else (0, 0)


def _policy_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in (".yaml", ".yml")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def policy_hash(directory: Path) -> str:
    """Digest of every policy file's name and bytes: which policy set made a decision."""
    digest = hashlib.sha256()
    for file in _policy_files(directory):
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


class _Checker:
    """Cross-document checks: references, duplicates, check kinds and CEL."""

    def __init__(self, docs: list[Document], incomplete: bool) -> None:
        self.docs = [d for d in docs if d.model is not None]
        self.invalid = [d for d in docs if d.model is None]
        self.incomplete = incomplete  # some document failed to load, so names may be missing
        self.errors: list[PolicyError] = []

    def of(self, model: type[BaseModel]) -> list[Document]:
        return [d for d in self.docs if isinstance(d.model, model)]

    def declared(self, kind: str, key: str, items: str | None = None) -> set[str]:
        """Names that documents which failed validation still declare, so that references to
        them do not add a second, misleading error."""
        names = set()
        for doc in self.invalid:
            if doc.raw.get("kind") != kind:
                continue
            entries = doc.raw.get(items, []) if items else [doc.raw]
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get(key), str):
                    names.add(entry[key])
        return names

    def unique(self, entries: list[tuple[Document, Loc, str]], what: str) -> set[str]:
        first: dict[str, tuple[Document, Loc]] = {}
        for doc, loc, ident in entries:
            if ident in first:
                other, other_loc = first[ident]
                line, _ = other.at(other_loc)
                self.errors.append(
                    doc.error(
                        loc, f"duplicate {what} '{ident}' (first defined at {other.path}:{line})"
                    )
                )
            else:
                first[ident] = (doc, loc)
        return set(first)

    def known(
        self, doc: Document, loc: Loc, ident: str, names: set[str] | dict[str, Any], what: str
    ) -> None:
        if ident not in names:
            note = (
                " (it may be defined in a document that failed to load)" if self.incomplete else ""
            )
            self.errors.append(
                doc.error(loc, f"unknown {what} '{ident}'{_suggest(ident, set(names))}{note}")
            )

    def compile(
        self, doc: Document, loc: Loc, text: str, env: str = "evidence", *, boolean: bool = False
    ) -> None:
        """Compile a CEL expression; ``boolean``: it decides something, so it must give true or
        false. Evidence is dynamic, so only a type CEL knows already (``1 + 1`` is an int) is
        refused here; the rest is checked when it runs."""
        try:
            compiled = cel.compile_expression(text, env)
        except cel.CelCompileError as exc:
            line, col = doc.at(loc)
            if loc in doc.block:
                line, col = _in_block(doc, loc, exc.line, exc.column)
            elif exc.line == 1:
                col += exc.column - (0 if loc in doc.quoted else 1)
            self.errors.append(PolicyError(doc.path, line, col, f"CEL: {exc}"))
            return
        gives = cel.result_type(compiled)
        if boolean and gives not in ("bool", "dyn"):
            self.errors.append(
                doc.error(loc, f"CEL: `{loc[-1]}` must be true or false, but this gives {gives}")
            )

    def run(self) -> LoadResult:
        lifecycles = self.of(Lifecycle)
        if not lifecycles and not any(d.raw.get("kind") == "Lifecycle" for d in self.invalid):
            return LoadResult(
                None,
                errors=[
                    *self.errors,
                    PolicyError("<policies>", 1, 1, "no document of kind Lifecycle"),
                ],
            )
        for extra in lifecycles[1:]:
            first = lifecycles[0]
            self.errors.append(
                extra.error(
                    ("kind",),
                    f"a second Lifecycle (the first is in {first.path}:{first.at(())[0]})",
                )
            )
        roles = self.declared("Roles", "id", "roles") | self.unique(
            [
                (d, ("roles", i, "id"), r.id)
                for d in self.of(Roles)
                for i, r in enumerate(d.model.roles)
            ],
            "role",
        )
        people = self.declared("People", "id", "people") | self.unique(
            [
                (d, ("people", i, "id"), p.id)
                for d in self.of(People)
                for i, p in enumerate(d.model.people)
            ],
            "person",
        )
        gates = self.declared("Gate", "id") | self.unique(
            [(d, ("id",), d.model.id) for d in self.of(Gate)], "gate"
        )
        projects = self.declared("Project", "key") | self.unique(
            [(d, ("key",), d.model.key) for d in self.of(Project)], "project"
        )
        if lifecycles:
            self._lifecycle(lifecycles[0], gates)
        for doc in self.of(Gate):
            self._gate(doc, roles)
        for doc in self.invalid:
            if doc.raw.get("kind") == "Gate" and isinstance(doc.raw.get("checks"), list):
                self._checks(doc, list(_valid_check_locs(doc.raw["checks"])))
        for doc in self.of(Project):
            for role, ids in doc.model.people.items():
                self.known(doc, ("people", role), role, roles, "role")
                for i, person in enumerate(ids):
                    self.known(doc, ("people", role, i), person, people, "person")
        for doc in self.of(PolicyTest):
            self.known(doc, ("gate",), doc.model.gate, gates, "gate")
            if doc.model.project:
                self.known(doc, ("project",), doc.model.project, projects, "project")
        if self.errors:
            return LoadResult(None, self.of(PolicyTest), self.errors)
        policy_set = PolicySet(
            lifecycle=lifecycles[0].model,
            gates={d.model.id: d.model for d in self.of(Gate)},
            roles={r.id: r for d in self.of(Roles) for r in d.model.roles},
            people={p.id: p for d in self.of(People) for p in d.model.people},
            projects={d.model.key: d.model for d in self.of(Project)},
            policy_hash="",
        )
        return LoadResult(policy_set, self.of(PolicyTest), [])

    def _lifecycle(self, doc: Document, gates: set[str]) -> None:
        lifecycle: Lifecycle = doc.model
        phases = set(
            self.unique(
                [(doc, ("phases", i, "id"), p.id) for i, p in enumerate(lifecycle.phases)], "phase"
            )
        )
        if lifecycle.initial:
            self.known(doc, ("initial",), lifecycle.initial, phases, "phase")
        # One way forward per phase, one rule per id: otherwise the first silently wins.
        self.unique(
            [
                (doc, ("transitions", i, "from"), t.from_)
                for i, t in enumerate(lifecycle.transitions)
            ],
            "transition from phase",
        )
        self.unique(
            [(doc, ("regressions", i, "id"), r.id) for i, r in enumerate(lifecycle.regressions)],
            "regression id",
        )
        for i, t in enumerate(lifecycle.transitions):
            self.known(doc, ("transitions", i, "from"), t.from_, phases, "phase")
            self.known(doc, ("transitions", i, "to"), t.to, phases, "phase")
            self.known(doc, ("transitions", i, "gate"), t.gate, gates, "gate")
        for i, r in enumerate(lifecycle.regressions):
            for j, phase in enumerate(r.from_):
                self.known(doc, ("regressions", i, "from", j), phase, phases, "phase")
            self.known(doc, ("regressions", i, "to"), r.to, phases, "phase")
            self.compile(doc, ("regressions", i, "when"), r.when, env="event", boolean=True)

    def _gate(self, doc: Document, roles: set[str]) -> None:
        gate: Gate = doc.model
        nodes = list(_check_locs(gate.checks, ("checks",)))
        self._checks(doc, nodes)
        ids = {node.id for node, _ in nodes}
        for i, rule in enumerate(gate.approvals):
            for j, role in enumerate(rule.roles):
                self.known(doc, ("approvals", i, "roles", j), role, roles, "role")
        for i, rule in enumerate(gate.waivers):
            for j, role in enumerate(rule.roles):
                self.known(doc, ("waivers", i, "roles", j), role, roles, "role")
            for j, check in enumerate(rule.checks):
                if check != "*":
                    self.known(doc, ("waivers", i, "checks", j), check, ids, "check")
        for j, role in enumerate(gate.notify or []):
            self.known(doc, ("notify", j), role, roles, "role")
        for j, role in enumerate(gate.reminders.escalate_to if gate.reminders else []):
            self.known(doc, ("reminders", "escalate_to", j), role, roles, "role")

    def _checks(self, doc: Document, nodes: list[tuple[Check, Loc]]) -> None:
        """Check ids, kinds, their parameters and CEL: what pydantic alone cannot know."""
        self.unique([(doc, (*loc, "id"), node.id) for node, loc in nodes], "check id")
        for node, loc in nodes:
            if node.kind is not None:
                kind = KINDS.get(node.kind)
                if kind is None:
                    self.known(doc, (*loc, "kind"), node.kind, KINDS, "check kind")
                else:
                    try:
                        kind.params.model_validate(node.with_)
                    except ValidationError as exc:
                        self.errors += _pydantic_errors(
                            exc, doc, (*loc, "with"), set(kind.params.model_fields)
                        )
            for key, text in (("expr", node.expr), ("if", node.if_), ("found", node.found)):
                if text is not None:
                    self.compile(doc, (*loc, key), text, boolean=key != "found")


def _in_block(doc: Document, loc: Loc, cel_line: int, cel_col: int) -> tuple[int, int]:
    """Map a CEL position inside a block scalar back to the file's (1-based) line and column."""
    first = doc.positions[loc][0] + 1  # the block's text starts on the line after '|' or '>'
    lines = doc.source[first:]
    indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    if doc.block[loc] == "|":
        return first + cel_line, indent + cel_col
    offset = cel_col - 1  # a folded block is one line to CEL: its lines joined by spaces
    for number, text in enumerate(lines):
        content = text.strip()
        if offset <= len(content):
            return first + number + 1, indent + offset + 1
        offset -= len(content) + 1
    return first + 1, indent + 1


def _valid_check_locs(raw_checks: list[Any]) -> Iterator[tuple[Check, Loc]]:
    """The checks of a gate that failed validation which are valid on their own."""
    for i, raw in enumerate(raw_checks):
        try:
            node = Check.model_validate(raw)
        except ValidationError:
            continue  # already reported with the whole document
        yield from _check_locs([node], ("checks",), start=i)


def _check_locs(checks: list[Check], loc: Loc, start: int = 0) -> Iterator[tuple[Check, Loc]]:
    for i, node in enumerate(checks, start):
        here = (*loc, i)
        yield node, here
        for key, children in (("all", node.all), ("any", node.any)):
            if children is not None:
                yield from _check_locs(children, (*here, key))
        if node.not_ is not None:
            yield from _check_locs([node.not_], (*here, "not"))


def load_policies(directory: Path | str) -> LoadResult:
    """Load and cross-check every ``*.yaml``/``*.yml`` under ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return LoadResult(None, errors=[PolicyError(str(directory), 1, 1, "not a directory")])
    docs, errors, incomplete = [], [], False
    for file in _policy_files(directory):
        found, problems, lost = _read_documents(file, str(file))
        docs += found
        errors += problems
        incomplete = incomplete or lost
    result = _Checker(docs, incomplete).run()
    result.errors = sorted(errors + result.errors)
    if result.errors:
        result.policies = None
    elif result.policies is not None:
        result.policies.policy_hash = policy_hash(directory)
    return result


def load_or_raise(directory: Path | str) -> PolicySet:
    result = load_policies(directory)
    if result.policies is None:
        raise PolicyLoadError(result.errors)
    return result.policies
