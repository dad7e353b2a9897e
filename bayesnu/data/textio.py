"""Reading and writing the whitespace-separated text tables of IceCube releases.

The public releases ship ``.csv`` files that are in fact whitespace-separated tables
with one header line (``# name name ...``). Copies in circulation differ in small
ways: the header with or without ``#``, other spellings of the column names, commas
as separators. :func:`read_table` accepts all of these, maps the header onto the
canonical column names of a :class:`TableSchema`, and raises a
:class:`~bayesnu.errors.DataFormatError` naming the file, the line and the field for
anything it cannot read: a wrong number of fields, a non-numeric token, NaN or inf,
a missing column. Nothing is skipped silently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesnu.errors import DataFormatError

_SPLIT = re.compile(r"[,\s]+")


def _norm(name: str) -> str:
    """Normalise a header token for alias matching (case, spaces, underscores)."""
    return re.sub(r"[\s_]+", "", name.strip().lower())


@dataclass(frozen=True)
class Column:
    """One column of a table schema.

    Parameters
    ----------
    name
        Canonical name used inside bayesnu (unit in the name, e.g. ``ra_deg``).
    header
        The spelling the release writes in its header line.
    aliases
        Other spellings found in circulating copies.
    integer
        Whether values must be integers (run and event numbers).
    """

    name: str
    header: str
    aliases: tuple[str, ...] = ()
    integer: bool = False

    def matches(self, token: str) -> bool:
        """Whether a header token names this column."""
        t = _norm(token)
        return t in {_norm(self.header), _norm(self.name), *(_norm(a) for a in self.aliases)}


@dataclass(frozen=True)
class TableSchema:
    """The columns of one release file type, in the release's order."""

    kind: str
    columns: tuple[Column, ...]
    optional: tuple[Column, ...] = ()

    @property
    def header_line(self) -> str:
        """Header line as the release writes it."""
        return "# " + " ".join(c.header for c in self.columns)


@dataclass(frozen=True)
class TextTable:
    """A numeric table read from a text file.

    Attributes
    ----------
    path
        The file it came from.
    columns
        Canonical column names, in file order.
    values
        ``(n_rows, n_columns)`` float64 array.
    data_lines
        1-based line number in ``path`` of each row.
    """

    path: Path
    columns: tuple[str, ...]
    values: np.ndarray
    data_lines: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> np.ndarray:
        """Values of one column by canonical name."""
        try:
            return self.values[:, self.columns.index(name)]
        except ValueError:
            raise KeyError(f"{self.path}: no column {name!r} (have {self.columns})") from None

    def has(self, name: str) -> bool:
        """Whether the table has a column."""
        return name in self.columns

    def line_of(self, row: int) -> int:
        """1-based line number of a row."""
        return int(self.data_lines[row])

    def error(self, row: int, column: str, message: str, fix: str) -> DataFormatError:
        """Build a :class:`DataFormatError` pointing at one cell."""
        header = column
        return DataFormatError(message, path=self.path, line=self.line_of(row), field=header, fix=fix)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _header_columns(
    tokens: list[str], schema: TableSchema, path: Path, line: int
) -> tuple[tuple[str, ...], bool]:
    """Map header tokens onto schema columns; returns (names, is_header)."""
    if all(_is_number(t) for t in tokens):
        return tuple(c.name for c in schema.columns), False
    known = schema.columns + schema.optional
    names: list[str] = []
    for tok in tokens:
        match = [c for c in known if c.matches(tok)]
        if not match:
            expected = " ".join(c.header for c in schema.columns)
            raise DataFormatError(
                f"unknown column {tok!r} in the header of a {schema.kind} file",
                path=path,
                line=line,
                field=tok,
                fix=f"use the release's header: '# {expected}'",
            )
        names.append(match[0].name)
    missing = [c.header for c in schema.columns if c.name not in names]
    if missing:
        raise DataFormatError(
            f"the header of this {schema.kind} file lacks column(s) {missing}",
            path=path,
            line=line,
            field=missing[0],
            fix=f"the release's header is '{schema.header_line}'",
        )
    if len(set(names)) != len(names):
        raise DataFormatError(
            "a column appears twice in the header",
            path=path,
            line=line,
            field=tokens[0],
            fix="remove the duplicate",
        )
    return tuple(names), True


def _slow_parse(
    lines: list[str], start: int, names: tuple[str, ...], path: Path, schema: TableSchema
) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse that locates the first bad line/field exactly."""
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    ncol = len(names)
    for idx in range(start, len(lines)):
        raw = lines[idx].strip()
        if not raw or raw.startswith("#"):
            continue
        lineno = idx + 1
        tokens = [t for t in _SPLIT.split(raw) if t]
        if len(tokens) != ncol:
            what = "truncated" if len(tokens) < ncol else "has extra fields"
            field_name = names[min(len(tokens), ncol - 1)] if len(tokens) < ncol else names[-1]
            raise DataFormatError(
                f"row {what}: expected {ncol} fields ({' '.join(names)}), found {len(tokens)}",
                path=path,
                line=lineno,
                field=field_name,
                fix="repair or remove this line (re-download the file if it was cut off)",
            )
        vals: list[float] = []
        for name, tok in zip(names, tokens):
            try:
                v = float(tok)
            except ValueError:
                raise DataFormatError(
                    f"value {tok!r} is not a number",
                    path=path,
                    line=lineno,
                    field=name,
                    fix="every field of a data row must be numeric",
                ) from None
            if not np.isfinite(v):
                raise DataFormatError(
                    f"value {tok!r} is not finite",
                    path=path,
                    line=lineno,
                    field=name,
                    fix="NaN and inf are not valid in release files; remove or repair this row",
                )
            vals.append(v)
        rows.append(vals)
        line_numbers.append(lineno)
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), ncol)
    return arr, np.asarray(line_numbers, dtype=np.int64)


def read_table(path: str | Path, schema: TableSchema) -> TextTable:
    """Read one release text table.

    Parameters
    ----------
    path
        File to read.
    schema
        Expected columns (their canonical names, release header and aliases).

    Returns
    -------
    TextTable
        The values as float64 with the canonical column names.

    Raises
    ------
    DataFormatError
        For an empty file, an unknown or missing column, a truncated row, a
        non-numeric, NaN or infinite value. The message names file, line and field.
    FileNotFoundError
        When the file does not exist.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="strict")
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise DataFormatError(
            f"the {schema.kind} file is empty", path=path, fix="re-download or regenerate the file"
        )
    head = lines[first].strip()
    tokens = [t for t in _SPLIT.split(head.lstrip("#").strip()) if t]
    names, is_header = _header_columns(tokens, schema, path, first + 1)
    if not is_header:
        warnings.warn(
            f"{path}: no header line; assuming the release's column order ({schema.header_line})",
            stacklevel=3,
        )
    start = first + 1 if is_header else first
    ncol = len(names)
    values: np.ndarray | None = None
    data_lines: np.ndarray | None = None
    # Fast path: pandas' C parser. Any irregularity (wrong field count, text, NaN,
    # comment or blank lines inside the data) falls back to the exact slow parser,
    # which reports the offending line.
    body = lines[start:]
    if body and not any((not ln.strip()) or ln.lstrip().startswith("#") for ln in body):
        try:
            import io

            import pandas as pd

            sep = "," if "," in body[0] else r"\s+"
            frame = pd.read_csv(
                io.StringIO("\n".join(body)),
                sep=sep,
                header=None,
                dtype=np.float64,
                engine="c",
                skipinitialspace=True,
            )
            arr = frame.to_numpy(dtype=np.float64)
            if arr.shape[1] == ncol and np.isfinite(arr).all():
                values = arr
                data_lines = np.arange(start + 1, start + 1 + arr.shape[0], dtype=np.int64)
        except (ValueError, TypeError, IndexError, pd.errors.ParserError):
            values = None
    if values is None or data_lines is None:
        values, data_lines = _slow_parse(lines, start, names, path, schema)
    if values.shape[0] == 0:
        raise DataFormatError(
            f"the {schema.kind} file has a header but no data rows",
            path=path,
            line=start,
            fix="re-download or regenerate the file",
        )
    for col in schema.columns + schema.optional:
        if col.integer and col.name in names:
            v = values[:, names.index(col.name)]
            bad = np.nonzero(v != np.round(v))[0]
            if bad.size:
                raise DataFormatError(
                    f"value {v[bad[0]]!r} must be an integer",
                    path=path,
                    line=int(data_lines[bad[0]]),
                    field=col.header,
                    fix="run/event numbers are integers",
                )
    return TextTable(path=path, columns=names, values=values, data_lines=data_lines)


def write_table(
    path: str | Path,
    schema: TableSchema,
    columns: Sequence[np.ndarray],
    formats: Sequence[str],
) -> None:
    """Write a table in the release's fixed-width text format, atomically.

    Parameters
    ----------
    path
        Destination file; written to a temporary name in the same folder and renamed.
    schema
        Provides the header line.
    columns
        One array per schema column, all of the same length.
    formats
        One printf-style format per column (e.g. ``"%17.8f"``).
    """
    from bayesnu.data.atomic import atomic_write_text

    if len(columns) != len(schema.columns) or len(formats) != len(columns):
        raise ValueError("one array and one format per schema column are required")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("all columns must have the same length")
    fmt = "".join(formats)
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]) if n else np.empty((0, 0))
    import io

    buf = io.StringIO()
    buf.write(schema.header_line + "\n")
    if n:
        np.savetxt(buf, stacked, fmt=fmt, delimiter="")
    atomic_write_text(path, buf.getvalue())
