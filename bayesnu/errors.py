"""Exception types with messages that name the file, line, field and the fix."""

from __future__ import annotations

from pathlib import Path


class BayesnuError(Exception):
    """Base class of all errors raised on purpose by bayesnu."""


class DataFormatError(BayesnuError, ValueError):
    """An input file does not follow its documented format.

    Parameters
    ----------
    message
        What is wrong.
    path
        The offending file.
    line
        1-based line number in ``path`` (``None`` when the problem is not tied to a line).
    field
        The column / field / key that is wrong.
    fix
        What the user should do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        field = f"field '{self.field}': " if self.field is not None else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}{field}{self.message}.{fix}"


class ConfigError(BayesnuError, ValueError):
    """A model card, an option or an argument is inconsistent."""


class FetchError(BayesnuError, RuntimeError):
    """A download could not be completed or verified."""
