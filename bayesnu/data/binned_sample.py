r"""Reader of generic binned diffuse samples: a data table and a weighted MC table with named columns.

The HESE release has fixed field names (:mod:`bayesnu.data.hese`). Other diffuse
samples -- a northern-tracks sample, a cascade sample, a user's own simulation --
come as two tables whose columns are named as their authors liked. This module reads
them and maps their columns onto the fields of the HESE schema, so that
:class:`~bayesnu.analyses.diffuse.DiffuseAnalysis` fits them with the same likelihood,
priors and binning machinery (see
:meth:`~bayesnu.analyses.diffuse.DiffuseAnalysis.from_binned_sample`).

Files
    ``.csv`` (comma-separated, one header line, ``#`` comment lines allowed), ``.ecsv``
    and ``.fits`` / ``.fits.gz`` / ``.fit`` (read with :mod:`astropy.table`; column
    units are honoured), or ``.json`` (one object mapping column names to lists, as the
    HESE files). The data table needs the observables; the MC table the observables,
    the truth and the weights.
Column mapping
    ``{field: column}`` with the analysis field names of :data:`FIELDS` as keys and
    the table's column names as values, or ``{field: {"column": name, "unit": ...,
    "log10": bool, "scale": float}}`` (a :class:`ColumnSpec`): ``unit`` is the unit of
    a column that carries none (CSV, JSON; default: the field's unit in
    :data:`FIELDS`), ``log10`` says the column holds :math:`\log_{10}` of the quantity
    (in ``unit``), ``scale`` multiplies the converted values (e.g. ``1/n_files`` for a
    OneWeight summed over files). A column with its own unit (ECSV, FITS) is converted
    to the field's unit.
Fields
    Observables (data and MC): ``recoDepositedEnergy`` (reconstructed energy; for
    tracks any energy proxy), ``recoZenith`` or ``recoCosZenith`` (one of them),
    ``recoMorphology`` (optional; without it every event gets the ``morphology``
    argument, e.g. 1 for a tracks sample) and ``recoLength`` (optional, NaN).
    MC only: ``primaryEnergy``, ``primaryType`` (PDG code; +-13 are atmospheric
    muons) and ``weightOverFluxOverLivetime`` [GeV sr cm^2] (required), and the
    optional ``pionFlux``, ``kaonFlux``, ``promptFlux`` [GeV^-1 s^-1 sr^-1 cm^-2]
    (default 0; a sample with one conventional-flux column maps it onto ``pionFlux``),
    ``conventionalSelfVetoCorrection``, ``promptSelfVetoCorrection`` (default 1),
    ``muonWeightOverLivetime`` [s^-1] (default 0), ``interactionType`` (default 0
    for muons, 1 otherwise), ``primaryZenith`` and ``trueLength`` (default NaN).
Validation
    Every problem raises :class:`~bayesnu.errors.DataFormatError` naming the file, the
    column (and the field it feeds), the first offending row (0-based, and the line
    for CSV / ECSV) and the fix: a missing column, an empty / masked or non-numeric
    value, NaN or inf (allowed only in lengths and ``primaryZenith``), a negative
    weight or flux, a value out of its domain (energies > 0, zenith in [0, pi], cos
    zenith in [-1, 1], PDG and morphology codes, veto fractions in [0, 1]), a muon row
    with a neutrino weight or a neutrino row with a muon weight.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u

from bayesnu.data.atomic import atomic_path, atomic_write_text
from bayesnu.data.hese import (
    INTERACTIONS,
    MC_FIELDS,
    MORPHOLOGIES,
    PDG_CODES,
    HESEData,
    HESEMonteCarlo,
    json_key_line,
    load_json_object,
)
from bayesnu.errors import DataFormatError


@dataclass(frozen=True)
class FieldInfo:
    """An analysis field a column can be mapped onto.

    Attributes
    ----------
    unit
        Unit the analysis uses (``""``: dimensionless or an integer code).
    integer
        Integer code (morphology, PDG type, interaction).
    nan_allowed
        Whether NaN marks an undefined value.
    description
        Meaning, for error messages and the docs.
    """

    unit: str
    integer: bool = False
    nan_allowed: bool = False
    description: str = ""


#: Fields a column can be mapped onto, with their units.
FIELDS: dict[str, FieldInfo] = {
    "recoDepositedEnergy": FieldInfo("GeV", description="reconstructed energy"),
    "recoZenith": FieldInfo("rad", description="reconstructed zenith angle"),
    "recoCosZenith": FieldInfo("", description="cosine of the reconstructed zenith angle"),
    "recoMorphology": FieldInfo("", integer=True, description="0 cascade, 1 track, 2 double cascade"),
    "recoLength": FieldInfo("m", nan_allowed=True, description="reconstructed length"),
    "primaryEnergy": FieldInfo("GeV", description="true neutrino energy"),
    "primaryType": FieldInfo("", integer=True, description="PDG code (+-12, +-14, +-16; +-13 muons)"),
    "primaryZenith": FieldInfo("rad", nan_allowed=True, description="true zenith angle"),
    "trueLength": FieldInfo("m", nan_allowed=True, description="true length"),
    "interactionType": FieldInfo("", integer=True, description="0 muon, 1 CC, 2 NC, 3 GR"),
    "weightOverFluxOverLivetime": FieldInfo("GeV cm2 sr", description="MC weight / (flux x livetime)"),
    "muonWeightOverLivetime": FieldInfo("1 / s", description="atmospheric-muon rate of the event"),
    "pionFlux": FieldInfo("1 / (GeV s sr cm2)", description="conventional (pion) flux"),
    "kaonFlux": FieldInfo("1 / (GeV s sr cm2)", description="conventional (kaon) flux"),
    "promptFlux": FieldInfo("1 / (GeV s sr cm2)", description="prompt flux"),
    "conventionalSelfVetoCorrection": FieldInfo("", description="conventional self-veto passing fraction"),
    "promptSelfVetoCorrection": FieldInfo("", description="prompt self-veto passing fraction"),
}

#: Fields of the data table that must be mapped (plus one of recoZenith / recoCosZenith).
REQUIRED_DATA: tuple[str, ...] = ("recoDepositedEnergy",)
#: Fields of the MC table that must be mapped (plus one of recoZenith / recoCosZenith).
REQUIRED_MC: tuple[str, ...] = (
    "recoDepositedEnergy",
    "primaryEnergy",
    "primaryType",
    "weightOverFluxOverLivetime",
)
#: Data-table fields (observables).
OBSERVABLE_FIELDS: tuple[str, ...] = (
    "recoDepositedEnergy",
    "recoZenith",
    "recoCosZenith",
    "recoMorphology",
    "recoLength",
)
#: Default of each optional MC field when no column is mapped.
MC_DEFAULTS: dict[str, float] = {
    "pionFlux": 0.0,
    "kaonFlux": 0.0,
    "promptFlux": 0.0,
    "conventionalSelfVetoCorrection": 1.0,
    "promptSelfVetoCorrection": 1.0,
    "muonWeightOverLivetime": 0.0,
    "primaryZenith": math.nan,
    "trueLength": math.nan,
    "recoLength": math.nan,
}

_NONNEGATIVE = ("weightOverFluxOverLivetime", "muonWeightOverLivetime", "pionFlux", "kaonFlux", "promptFlux")
_FRACTIONS = ("conventionalSelfVetoCorrection", "promptSelfVetoCorrection")
_TABLE_SUFFIXES = (".csv", ".ecsv", ".fits", ".fits.gz", ".fit", ".json")


@dataclass(frozen=True)
class ColumnSpec:
    """Where a field comes from: a column, its unit if the file gives none, log10, a scale.

    Parameters
    ----------
    column
        Column name in the table.
    unit
        Unit of the (linear) quantity when the column has no unit of its own
        (default: the field's unit in :data:`FIELDS`).
    log10
        The column holds :math:`\\log_{10}` of the quantity in ``unit``.
    scale
        Factor applied after the unit conversion (finite, > 0).
    """

    column: str
    unit: str | None = None
    log10: bool = False
    scale: float = 1.0

    @classmethod
    def parse(cls, field: str, value: str | ColumnSpec | Mapping[str, Any]) -> ColumnSpec:
        """A :class:`ColumnSpec` from a column name, a spec or a mapping (``column``, ``unit``, ...)."""
        if isinstance(value, ColumnSpec):
            spec = value
        elif isinstance(value, str):
            spec = cls(value)
        elif isinstance(value, Mapping):
            unknown = set(value) - {"column", "unit", "log10", "scale"}
            if unknown or "column" not in value:
                raise DataFormatError(
                    f"column mapping of {field!r} is {dict(value)!r}",
                    field=field,
                    fix="give a column name or a mapping with 'column' and optional 'unit', 'log10', 'scale'",
                )
            spec = cls(
                str(value["column"]),
                None if value.get("unit") is None else str(value["unit"]),
                bool(value.get("log10", False)),
                float(value.get("scale", 1.0)),
            )
        else:
            raise DataFormatError(
                f"column mapping of {field!r} is a {type(value).__name__}",
                field=field,
                fix="give the column name as a string",
            )
        if not (math.isfinite(spec.scale) and spec.scale > 0):
            raise DataFormatError(
                f"scale {spec.scale} of column {spec.column!r} is not a finite positive number",
                field=field,
                fix="use a positive scale factor",
            )
        return spec


def parse_columns(columns: Mapping[str, str | ColumnSpec | Mapping[str, Any]]) -> dict[str, ColumnSpec]:
    """Validate a column mapping ``{field: column or spec}`` (field names of :data:`FIELDS`)."""
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise DataFormatError(
            f"unknown field(s) {unknown} in the column mapping",
            field=unknown[0],
            fix=f"map columns onto the analysis fields {sorted(FIELDS)}",
        )
    specs = {f: ColumnSpec.parse(f, v) for f, v in columns.items()}
    if "recoZenith" in specs and "recoCosZenith" in specs:
        raise DataFormatError(
            "both recoZenith and recoCosZenith are mapped",
            field="recoCosZenith",
            fix="map the direction once, as zenith or as cos zenith",
        )
    return specs


# ----------------------------------------------------------------------------- table access
class _Table:
    """The raw columns of one file and how to name the place of a row in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        name = path.name.lower()
        self.kind = next((s for s in _TABLE_SUFFIXES if name.endswith(s)), "")
        if not self.kind:
            raise DataFormatError(
                "unknown table type",
                path=path,
                fix="use a .csv, .ecsv, .fits (.fits.gz, .fit) or .json file",
            )
        if not path.exists():
            raise DataFormatError("file not found", path=path, fix="check the path")
        self.units: dict[str, u.UnitBase | None] = {}
        self.meta: dict[str, Any] = {}
        self._lines: list[int] | None = None
        self._json_obj: dict | None = None
        if self.kind == ".json":
            obj = load_json_object(path)
            self._json_obj = obj
            self.columns: dict[str, Any] = dict(obj)
            self.units = dict.fromkeys(obj)
        else:
            self.columns = self._read_astropy()

    def _read_astropy(self) -> dict[str, Any]:
        from astropy.table import Table

        fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(self.kind)
        try:
            if fmt is None:
                table = Table.read(self.path, format="fits")
            elif fmt == "ascii.csv":
                table = Table.read(self.path, format=fmt, comment="#")
            else:
                table = Table.read(self.path, format=fmt)
        except Exception as exc:  # astropy raises many types for malformed files
            raise DataFormatError(
                f"cannot be read as a {self.kind} table ({type(exc).__name__}: {exc})",
                path=self.path,
                fix="write one header line of column names and one row per event",
            ) from None
        self.meta = dict(table.meta)
        self.units = {n: table[n].unit for n in table.colnames}
        return {n: table[n] for n in table.colnames}

    def row_line(self, row: int) -> int | None:
        """1-based file line of data row ``row`` (CSV / ECSV; ``None`` for other formats)."""
        if self.kind not in (".csv", ".ecsv"):
            return None
        if self._lines is None:
            lines: list[int] = []
            header_seen = False
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for k, text in enumerate(fh, start=1):
                    s = text.strip()
                    if not s or s.startswith("#"):
                        continue
                    if not header_seen:
                        header_seen = True
                        continue
                    lines.append(k)
            self._lines = lines
        return self._lines[row] if 0 <= row < len(self._lines) else None

    def key_line(self, column: str) -> int | None:
        """1-based line of a JSON key (``None`` for other formats)."""
        if self.kind != ".json":
            return None
        return json_key_line(self.path, column)


def _fail(
    table: _Table, spec: ColumnSpec, field: str, row: int, what: str, fix: str, n_bad: int | None = None
) -> DataFormatError:
    """Error for row ``row`` of ``spec.column`` (line of the row in CSV / ECSV, of the key in JSON)."""
    if table.kind == ".json":
        where, line = f"element {row}", table.key_line(spec.column)
    else:
        where, line = f"row {row}", table.row_line(row)
    count = f" ({n_bad} rows fail)" if n_bad and n_bad > 1 else ""
    return DataFormatError(
        f"{where}: {what}{count}",
        path=table.path,
        line=line,
        field=spec.column if spec.column == field else f"{spec.column} (-> {field})",
        fix=fix,
    )


def _raw_values(table: _Table, spec: ColumnSpec, field: str) -> np.ndarray:
    """The column as float64, with empty / masked / non-numeric entries reported."""
    if spec.column not in table.columns:
        raise DataFormatError(
            f"column {spec.column!r} (mapped onto {field}) is missing; columns present: "
            f"{sorted(table.columns)}",
            path=table.path,
            field=spec.column,
            fix=f"add the column or map {field} onto one of the columns present",
        )
    col = table.columns[spec.column]
    if table.kind == ".json":
        if not isinstance(col, list):
            raise DataFormatError(
                f"value is a JSON {type(col).__name__}, not a list",
                path=table.path,
                line=table.key_line(spec.column),
                field=spec.column,
                fix="give one number per event",
            )
        bad = next(
            (i for i, v in enumerate(col) if isinstance(v, bool) or not isinstance(v, (int, float))), None
        )
        if bad is not None:
            raise _fail(
                table, spec, field, bad, f"{col[bad]!r} is not a number", "every value must be a number"
            )
        return np.asarray(col, dtype=float)
    if getattr(col, "ndim", 1) != 1:
        raise DataFormatError(
            f"column {spec.column!r} has shape {col.shape}, not one value per row",
            path=table.path,
            field=spec.column,
            fix="store one scalar per event",
        )
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), dtype=bool)), dtype=bool)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        raise _fail(table, spec, field, i, "value is empty or masked", "fill every row", int(mask.sum()))
    data = np.asarray(col)
    if data.dtype.kind not in "biuf":
        for i, v in enumerate(data):
            try:
                float(v)
            except (TypeError, ValueError):
                raise _fail(
                    table, spec, field, i, f"{str(v)!r} is not a number", "every value must be a number"
                ) from None
        return data.astype(float)
    return data.astype(float)


def _convert(table: _Table, spec: ColumnSpec, field: str, values: np.ndarray) -> np.ndarray:
    """Apply log10, units and scale: values in the field's unit."""
    info = FIELDS[field]
    target = u.Unit(info.unit) if info.unit else u.dimensionless_unscaled
    col_unit = table.units.get(spec.column)
    if col_unit is not None and col_unit != u.dimensionless_unscaled and spec.log10:
        raise DataFormatError(
            f"column {spec.column!r} has unit {col_unit} and is mapped with log10",
            path=table.path,
            field=spec.column,
            fix="drop the column's unit and give the unit of the linear quantity with 'unit'",
        )
    if spec.log10:
        with np.errstate(over="ignore", invalid="ignore"):
            values = 10.0**values
    unit = col_unit if (col_unit is not None and not spec.log10) else None
    if unit is None:
        try:
            unit = u.Unit(spec.unit) if spec.unit is not None else target
        except ValueError:
            raise DataFormatError(
                f"unit {spec.unit!r} of column {spec.column!r} is not a unit astropy knows",
                path=table.path,
                field=spec.column,
                fix=f"give the unit in astropy's notation, e.g. {info.unit or 'an empty string'!r}",
            ) from None
    if info.integer and unit != u.dimensionless_unscaled:
        raise DataFormatError(
            f"column {spec.column!r} holds integer codes but has unit {unit}",
            path=table.path,
            field=spec.column,
            fix="integer codes are dimensionless",
        )
    if unit != target:
        try:
            values = (values * unit).to_value(target)
        except u.UnitConversionError:
            raise DataFormatError(
                f"column {spec.column!r} has unit {unit}, which cannot be converted to {target} ({field})",
                path=table.path,
                field=spec.column,
                fix=f"give {field} ({info.description}) in {info.unit or 'dimensionless units'}",
            ) from None
    return np.asarray(values, dtype=float) * spec.scale


def _field(table: _Table, spec: ColumnSpec, field: str) -> np.ndarray:
    """A validated field (finite unless NaN is allowed; integer codes as int64)."""
    values = _convert(table, spec, field, _raw_values(table, spec, field))
    info = FIELDS[field]
    ok = np.isfinite(values) | (np.isnan(values) if info.nan_allowed else False)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        allowed = "NaN is allowed only in recoLength, trueLength and primaryZenith"
        raise _fail(table, spec, field, i, f"value is {values[i]} (not finite)", allowed, int((~ok).sum()))
    if info.integer:
        frac = values != np.round(values)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise _fail(table, spec, field, i, f"{values[i]} is not an integer", "integer codes are required")
        return values.astype(np.int64)
    return values


def _check(
    table: _Table, spec: ColumnSpec, field: str, values: np.ndarray, ok: np.ndarray, what: str, fix: str
) -> None:
    ok = np.asarray(ok, dtype=bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise _fail(table, spec, field, i, f"{field} = {values[i].item()!r}: {what}", fix, int((~ok).sum()))


def _validate_domain(table: _Table, specs: Mapping[str, ColumnSpec], cols: Mapping[str, np.ndarray]) -> None:
    """Domain checks of every mapped field (see the module docstring)."""
    checks: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str, str]] = {
        "recoDepositedEnergy": (lambda x: x > 0, "energies must be > 0", "energies are in GeV"),
        "primaryEnergy": (lambda x: x > 0, "energies must be > 0", "energies are in GeV"),
        "recoZenith": (
            lambda x: (x >= 0) & (x <= math.pi),
            "zenith must lie in [0, pi] rad",
            "check the unit",
        ),
        "primaryZenith": (
            lambda x: np.isnan(x) | ((x >= 0) & (x <= math.pi)),
            "zenith must lie in [0, pi] rad",
            "check the unit",
        ),
        "recoCosZenith": (
            lambda x: (x >= -1) & (x <= 1),
            "cos zenith must lie in [-1, 1]",
            "check the column",
        ),
        "recoLength": (lambda x: np.isnan(x) | (x >= 0), "lengths must be >= 0 or NaN", "lengths are in m"),
        "trueLength": (lambda x: np.isnan(x) | (x >= 0), "lengths must be >= 0 or NaN", "lengths are in m"),
        "recoMorphology": (
            lambda x: np.isin(x, list(MORPHOLOGIES)),
            "morphology must be 0 (cascade), 1 (track) or 2 (double cascade)",
            "recode the morphology column",
        ),
        "primaryType": (
            lambda x: np.isin(x, sorted(PDG_CODES)),
            f"PDG code must be one of {sorted(PDG_CODES)}",
            "use +-12, +-14, +-16 for neutrinos and +-13 for atmospheric muons",
        ),
        "interactionType": (
            lambda x: np.isin(x, list(INTERACTIONS)),
            "interaction must be 0 (muon), 1 (CC), 2 (NC) or 3 (GR)",
            "recode the column",
        ),
    }
    for name in _NONNEGATIVE:
        checks[name] = (lambda x: x >= 0, "negative weight or flux", "weights and fluxes must be >= 0")
    for name in _FRACTIONS:
        checks[name] = (lambda x: (x >= 0) & (x <= 1), "passing fractions lie in [0, 1]", "check the column")
    for name, spec in specs.items():
        if name in checks:
            fn, what, fix = checks[name]
            _check(table, spec, name, cols[name], fn(cols[name]), what, fix)


def _read_fields(
    path: str | Path,
    columns: Mapping[str, Any],
    required: tuple[str, ...],
    wanted: tuple[str, ...] | None,
    allow_empty: bool = False,
) -> tuple[_Table, dict[str, ColumnSpec], dict[str, np.ndarray]]:
    table = _Table(Path(path))
    specs = parse_columns(columns)
    if wanted is not None:
        specs = {k: v for k, v in specs.items() if k in wanted}
    missing = [f for f in required if f not in specs]
    if "recoZenith" not in specs and "recoCosZenith" not in specs:
        missing.append("recoZenith or recoCosZenith")
    if missing:
        raise DataFormatError(
            f"the column mapping has no column for {missing}",
            path=table.path,
            field=missing[0],
            fix="add these fields to the column mapping ({field: column name})",
        )
    cols = {name: _field(table, spec, name) for name, spec in specs.items()}
    sizes = {name: v.shape[0] for name, v in cols.items()}
    n_rows = max(sizes.values())
    short = sorted(name for name, k in sizes.items() if k != n_rows)
    if short:
        raise DataFormatError(
            f"column {specs[short[0]].column!r} has {sizes[short[0]]} values, others {n_rows}",
            path=table.path,
            line=table.key_line(specs[short[0]].column),
            field=specs[short[0]].column,
            fix="give every column one value per event",
        )
    if n_rows == 0 and not allow_empty:
        raise DataFormatError("the table has no rows", path=table.path, fix="give at least one event")
    _validate_domain(table, specs, cols)
    return table, specs, cols


def _observables(
    cols: dict[str, np.ndarray], morphology: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    zen = cols["recoZenith"] if "recoZenith" in cols else np.arccos(np.clip(cols["recoCosZenith"], -1.0, 1.0))
    morph = cols.get("recoMorphology", np.full(n, int(morphology), dtype=np.int64))
    length = cols.get("recoLength", np.full(n, math.nan))
    return cols["recoDepositedEnergy"], morph, zen, length


def _check_morphology(morphology: int) -> None:
    if morphology not in MORPHOLOGIES:
        raise DataFormatError(
            f"morphology {morphology!r} is not a morphology code",
            field="recoMorphology",
            fix="use 0 (cascade), 1 (track) or 2 (double cascade)",
        )


def read_binned_data(
    path: str | Path, columns: Mapping[str, str | ColumnSpec | Mapping[str, Any]], *, morphology: int = 0
) -> HESEData:
    """Read observed events of a generic binned sample.

    Parameters
    ----------
    path
        ``.csv``, ``.ecsv``, ``.fits`` or ``.json`` table, one row per event.
    columns
        ``{field: column}``; only the observables (:data:`OBSERVABLE_FIELDS`) are used,
        so the MC's mapping can be passed unchanged.
    morphology
        Morphology code of every event when ``recoMorphology`` is not mapped.

    Returns
    -------
    HESEData

    Raises
    ------
    DataFormatError
        Missing column, empty / non-numeric / non-finite value or a value out of its
        domain (file, column, row and fix in the message). A table without rows is
        allowed (no events observed).
    """
    _check_morphology(morphology)
    table, _, cols = _read_fields(path, columns, REQUIRED_DATA, OBSERVABLE_FIELDS, allow_empty=True)
    e, m, z, length = _observables(cols, morphology, cols["recoDepositedEnergy"].shape[0])
    return HESEData(e, m, z, length, str(table.path))


def read_binned_mc(
    path: str | Path, columns: Mapping[str, str | ColumnSpec | Mapping[str, Any]], *, morphology: int = 0
) -> HESEMonteCarlo:
    """Read weighted MC of a generic binned sample into the HESE MC schema.

    Parameters
    ----------
    path
        ``.csv``, ``.ecsv``, ``.fits`` or ``.json`` table, one row per MC event.
    columns
        ``{field: column}`` (see :data:`FIELDS`; unmapped optional fields get
        :data:`MC_DEFAULTS`).
    morphology
        Morphology code of every event when ``recoMorphology`` is not mapped.

    Returns
    -------
    HESEMonteCarlo
        All fields of :data:`bayesnu.data.hese.MC_FIELDS`; ``extra`` lists the columns
        of the file that were not mapped.

    Raises
    ------
    DataFormatError
        As :func:`read_binned_data`, plus negative weights or fluxes, veto fractions
        outside [0, 1], muon rows (PDG +-13) with a neutrino weight, neutrino rows with a
        muon weight, interaction codes inconsistent with the PDG type.
    """
    _check_morphology(morphology)
    table, specs, cols = _read_fields(path, columns, REQUIRED_MC, None)
    n = cols["recoDepositedEnergy"].shape[0]
    e, m, z, length = _observables(cols, morphology, n)
    fields: dict[str, np.ndarray] = {}
    for name in MC_FIELDS:
        if name in cols:
            fields[name] = cols[name]
        elif name in MC_DEFAULTS:
            fields[name] = np.full(n, MC_DEFAULTS[name])
    fields.update({"recoDepositedEnergy": e, "recoMorphology": m, "recoZenith": z, "recoLength": length})
    is_muon = np.abs(fields["primaryType"]) == 13
    if "interactionType" not in cols:
        fields["interactionType"] = np.where(is_muon, 0, 1).astype(np.int64)
    else:
        _check(
            table,
            specs["interactionType"],
            "interactionType",
            fields["interactionType"],
            (fields["interactionType"] == 0) == is_muon,
            "interactionType 0 is for atmospheric muons (primaryType +-13) only",
            "give muons interactionType 0 and neutrinos 1, 2 or 3",
        )
    w = "weightOverFluxOverLivetime"
    _check(
        table,
        specs[w],
        w,
        fields[w],
        ~is_muon | (fields[w] == 0),
        "atmospheric-muon rows (primaryType +-13) carry a neutrino weight",
        "set weightOverFluxOverLivetime to 0 for muons and give their rate as muonWeightOverLivetime",
    )
    if "muonWeightOverLivetime" in specs:
        mw = "muonWeightOverLivetime"
        _check(
            table,
            specs[mw],
            mw,
            fields[mw],
            is_muon | (fields[mw] == 0),
            "neutrino rows carry an atmospheric-muon weight",
            "set muonWeightOverLivetime to 0 for neutrinos (primaryType +-12, +-14, +-16)",
        )
    extra = tuple(sorted(set(table.columns) - {s.column for s in specs.values()}))
    return HESEMonteCarlo(fields, str(table.path), extra)


@dataclass(frozen=True)
class BinnedSample:
    """Observed events and weighted MC of a generic binned diffuse sample.

    Attributes
    ----------
    data, mc
        Events and MC in the HESE schema (see :func:`read_binned_data`,
        :func:`read_binned_mc`).
    livetime_s
        Livetime of the data [s].
    name
        A label (used in outputs).
    """

    data: HESEData
    mc: HESEMonteCarlo
    livetime_s: float
    name: str = "binned sample"


_LIVETIME_KEYS = ("livetime_s", "LIVETIME", "livetime")


def read_binned_sample(
    data_path: str | Path,
    mc_path: str | Path,
    columns: Mapping[str, str | ColumnSpec | Mapping[str, Any]],
    *,
    data_columns: Mapping[str, str | ColumnSpec | Mapping[str, Any]] | None = None,
    livetime_s: float | None = None,
    morphology: int = 0,
    name: str | None = None,
) -> BinnedSample:
    """Read a generic binned diffuse sample (data table + weighted MC table).

    Parameters
    ----------
    data_path, mc_path
        The two tables (``.csv``, ``.ecsv``, ``.fits``, ``.json``).
    columns
        Column mapping of the MC table (and of the data table unless ``data_columns``).
    data_columns
        Column mapping of the data table when its columns are named differently.
    livetime_s
        Livetime [s]; default: the data table's ``livetime_s`` / ``LIVETIME`` metadata
        (ECSV, FITS).
    morphology
        Morphology code of all events when ``recoMorphology`` is not mapped (1 for a
        tracks sample).
    name
        Label (default: the data file's name).
    """
    data = read_binned_data(data_path, data_columns or columns, morphology=morphology)
    mc = read_binned_mc(mc_path, columns, morphology=morphology)
    if livetime_s is None:
        meta = _Table(Path(data_path)).meta
        key = next((k for k in _LIVETIME_KEYS if k in meta), None)
        if key is None:
            raise DataFormatError(
                "no livetime given and none in the table's metadata",
                path=data_path,
                field="livetime_s",
                fix="pass livetime_s=... [s] or store 'livetime_s' in the ECSV / FITS metadata",
            )
        livetime_s = meta[key]
    try:
        livetime = float(livetime_s)
    except (TypeError, ValueError):
        livetime = math.nan
    if not (math.isfinite(livetime) and livetime > 0):
        raise DataFormatError(
            f"livetime {livetime_s!r} is not a positive number of seconds",
            path=data_path,
            field="livetime_s",
            fix="give the livetime in seconds",
        )
    return BinnedSample(data, mc, livetime, name or Path(data_path).name)


def write_binned_table(
    path: str | Path,
    columns: Mapping[str, np.ndarray],
    *,
    units: Mapping[str, str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write columns as a ``.csv``, ``.ecsv``, ``.fits`` or ``.json`` table (atomically).

    ``units`` (``{column: unit}``) are stored in ECSV and FITS (CSV and JSON carry
    none); ``meta`` (e.g. ``{"livetime_s": ...}``) in ECSV and FITS.
    """
    from astropy.table import Table

    path = Path(path)
    name = path.name.lower()
    kind = next((s for s in _TABLE_SUFFIXES if name.endswith(s)), "")
    if kind == ".json":
        obj = {k: np.asarray(v).tolist() for k, v in columns.items()}
        atomic_write_text(path, json.dumps(obj, allow_nan=True))
        return path
    if not kind:
        raise DataFormatError("unknown table type", path=path, fix="use .csv, .ecsv, .fits or .json")
    t = Table({k: np.asarray(v) for k, v in columns.items()}, meta=dict(meta or {}))
    for k, unit in (units or {}).items():
        t[k].unit = u.Unit(unit)
    fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(kind, "fits")
    suffix = ".fits.gz" if kind == ".fits.gz" else kind
    with atomic_path(path, suffix=suffix) as tmp:
        t.write(tmp, format=fmt, overwrite=True)
    return path
