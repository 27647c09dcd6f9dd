"""Errors that are shown to users as-is, without a traceback."""

from __future__ import annotations

from pathlib import Path


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
