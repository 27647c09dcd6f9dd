"""Errors that are shown to users as-is, without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class GatrecError(Exception):
    """A user-facing error: the CLI prints the message and exits non-zero."""


class DataError(GatrecError):
    """Bad input data: names the file and, where known, the line and the field."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.file, self.line, self.field = (str(file) if file is not None else None), line, field
        where = []
        if file is not None:
            where.append(f"{file}" + (f":{line}" if line is not None else ""))
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def _message(error: dict[str, Any]) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _loc(error: dict[str, Any]) -> list[str]:
    """An error's field path; an error raised inside a nested config carries the inner path (``loc``)."""
    loc = [str(p) for p in error["loc"]]
    nested = (error.get("ctx") or {}).get("error")
    return loc + [str(p) for p in getattr(nested, "loc", ())]


def invalid_options(exc: ValidationError, what: str = "options", *, as_flags: bool = True) -> GatrecError:
    """A pydantic ValidationError of command-line values as one line naming each option:
    ``invalid synth options: --users: Input should be greater than or equal to 10; ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(_loc(err))
        if as_flags and loc:
            loc = "--" + loc.replace("_", "-")
        parts.append((f"{loc}: " if loc else "") + _message(err))
    return GatrecError(f"invalid {what}: " + "; ".join(parts))


def invalid_file(exc: ValidationError, file: str | Path, text: str | None = None) -> DataError:
    """The first error of a pydantic ValidationError of a (YAML) file as a DataError naming the file, the
    line of the offending key (when ``text`` is given and holds it) and the field."""
    err = exc.errors()[0]
    loc = _loc(err)
    return DataError(_message(err), file=file, line=yaml_line(text, loc) if text is not None else None,
                     field=".".join(loc) or None)


def yaml_line(text: str, loc: list[str] | tuple) -> int | None:
    """1-based line of the deepest key (or list item) of ``loc`` found in a YAML document; None if none is."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and str(key).isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line
