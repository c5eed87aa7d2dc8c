"""What a YAML error says, and where, in the terms a person fixing the file needs.

ruamel raises two families of errors. A ``MarkedYAMLError`` (syntax, duplicate key, unknown
tag) carries a mark with line and column. A plain ``YAMLError`` carries less: the
``ReaderError`` for a control character (a NUL or an ESC pasted into a file) knows only its
offset in the text. Both must become ``line:col: message``, never a traceback, whether the
file is a policy or a document in a project's repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError


@dataclass(frozen=True)
class YamlProblem:
    message: str
    line: int  # 1-based
    col: int  # 1-based


def describe(exc: YAMLError, text: str) -> YamlProblem:
    """The message and 1-based position of a YAML error raised while reading ``text``."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return YamlProblem(message or str(exc).splitlines()[0], line, col)
    if isinstance(exc, ReaderError) and isinstance(exc.character, int):
        offset = exc.position if isinstance(exc.position, int) else 0
        before = text[:offset]
        line = before.count("\n") + 1
        col = offset - (before.rfind("\n") + 1) + 1
        char = exc.character
        kind = "control" if char < 0x20 or 0x7F <= char <= 0x9F else "non-printable"
        escape = f"\\x{char:02x}" if char <= 0xFF else f"\\u{char:04x}"
        return YamlProblem(
            f"{kind} character U+{char:04X} is not allowed in YAML: remove it, or write it as "
            f'the escape "{escape}" inside a double-quoted string',
            line,
            col,
        )
    return YamlProblem(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 1, 1)
