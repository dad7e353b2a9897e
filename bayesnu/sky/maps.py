"""HEALPix sky maps: reading / writing, spatial priors, the prior term of TS maps, credible regions.

All maps are held in RING ordering and equatorial (ICRS) coordinates; angles are degrees at the
interface and radians inside.  Three kinds of map are distinguished:

``"probability"``
    per-pixel probability (sums to 1 over the sky);
``"density"``
    probability per steradian (integrates to 1 over the sky);
``"value"``
    any other scalar map (a TS map, a sensitivity map, ...).

Files are read with astropy (never with pickle or eval): implicit full-sky maps (RING or
NESTED), explicit partial-sky maps (``INDXSCHM = 'EXPLICIT'``, a ``PIXEL`` column) and the
multi-order (MOC, ``ORDERING = 'NUNIQ'``) sky maps published with gravitational-wave alerts
(a ``UNIQ`` column and ``PROBDENSITY`` in 1/sr).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Literal

import healpy as hp
import numpy as np

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError, DataFormatError

MapKind = Literal["probability", "density", "value"]
_KINDS: tuple[str, ...] = ("probability", "density", "value")
_KIND_KEYWORD = "BNU_KIND"  # FITS keywords are at most 8 characters
_COLUMN_FOR_KIND = {"probability": "PROB", "density": "PROBDENSITY", "value": "VALUE"}
_DENSITY_COLUMNS = ("PROBDENSITY",)
_DENSITY_UNITS = ("sr-1", "/sr", "1/sr", "sr^-1", "sr**-1")
#: Default cap on the resolution a multi-order map is flattened to (``nside`` not given).
MOC_DEFAULT_MAX_NSIDE = 256
_MAX_ORDER = 29


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _check_nside(nside: int, what: str = "nside") -> int:
    try:
        n = int(nside)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be an integer power of 2, got {nside!r}") from None
    if n != nside or n < 1 or not hp.isnsideok(n, nest=True):
        raise ConfigError(f"{what} must be a power of 2 between 1 and 2**29, got {nside!r}")
    return n


def _check_kind(kind: str) -> str:
    if kind not in _KINDS:
        raise ConfigError(f"map kind must be one of {_KINDS}, got {kind!r}")
    return kind


def _npix_to_nside(npix: int) -> int | None:
    """The nside of a full-sky map of ``npix`` pixels, or None when ``npix`` is not 12 nside^2."""
    if npix < 12 or npix % 12:
        return None
    nside = math.isqrt(npix // 12)
    if 12 * nside * nside != npix or not hp.isnsideok(nside, nest=True):
        return None
    return nside


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level <= 1.0:
        raise ConfigError(f"credible level must lie in (0, 1], got {level!r}")
    return level


# --------------------------------------------------------------------------------------------
# SkyMap
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class SkyMap:
    """A full-sky HEALPix map in RING ordering, equatorial coordinates.

    Parameters
    ----------
    values
        Pixel values, RING ordering, length ``12 * nside**2`` (stored as a read-only float64 copy).
    kind
        ``"probability"`` (per pixel, sums to 1), ``"density"`` (per steradian) or ``"value"``.
    meta
        Free-form provenance (source file, HDU, column, original ordering, ...).

    Raises
    ------
    ConfigError
        When the length is not a valid HEALPix pixel count, a value is not finite, or a
        probability / density map has a negative pixel.
    """

    values: np.ndarray
    kind: str = "probability"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        v = np.array(self.values, dtype=np.float64, copy=True)
        if v.ndim != 1:
            raise ConfigError(f"a sky map must be one-dimensional, got shape {v.shape}")
        if _npix_to_nside(v.size) is None:
            raise ConfigError(
                f"a HEALPix map has 12 * nside**2 pixels (nside a power of 2); got {v.size} values"
            )
        bad = ~np.isfinite(v)
        if bad.any():
            raise ConfigError(
                f"sky map has {int(bad.sum())} non-finite pixel(s) (first at pixel {int(np.argmax(bad))}); "
                "replace blank / NaN pixels by 0 (priors) or a finite value"
            )
        if self.kind != "value" and (v < 0).any():
            raise ConfigError(
                f"{self.kind} map has {int((v < 0).sum())} negative pixel(s) (minimum {v.min():.3g}); "
                "a prior must be non-negative: clip it (np.clip(values, 0, None)) or floor it"
            )
        v.setflags(write=False)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "meta", dict(self.meta))

    # -- geometry -------------------------------------------------------------------------
    @property
    def nside(self) -> int:
        """HEALPix resolution parameter."""
        return int(hp.npix2nside(self.values.size))

    @property
    def npix(self) -> int:
        """Number of pixels, ``12 * nside**2``."""
        return int(self.values.size)

    @property
    def pixel_area_sr(self) -> float:
        """Area of one pixel [sr]."""
        return 4.0 * np.pi / self.npix

    @property
    def pixel_area_deg2(self) -> float:
        """Area of one pixel [deg^2]."""
        return self.pixel_area_sr * np.degrees(1.0) ** 2

    def _replace(self, values: np.ndarray, kind: str | None = None) -> SkyMap:
        return SkyMap(values, kind=self.kind if kind is None else kind, meta=self.meta)

    # -- I/O ------------------------------------------------------------------------------
    @classmethod
    def read(
        cls,
        path: str | Path,
        *,
        field: int | str = 0,
        nside: int | None = None,
        kind: str | None = None,
        hdu: int | str | None = None,
    ) -> SkyMap:
        """Read a HEALPix FITS map.

        Parameters
        ----------
        path
            FITS file: an implicit full-sky map (``ORDERING`` RING or NESTED), an explicit
            partial-sky map (``INDXSCHM = 'EXPLICIT'`` with a ``PIXEL`` column; missing pixels
            are 0) or a multi-order map (a ``UNIQ`` column, as in gravitational-wave alerts).
        field
            Column to read: its index among the data columns (the ``PIXEL`` / ``UNIQ`` column
            does not count) or its name.  For multi-order maps the default is ``PROBDENSITY``
            when present.
        nside
            Resolution of the returned map.  Multi-order maps are flattened to it (default: the
            finest order present, capped at nside 256); other maps are resampled with
            :meth:`ud_grade` when it differs from the file's.
        kind
            Kind of the returned map: ``"probability"``, ``"density"`` or ``"value"``; default:
            the file's ``BNU_KIND`` keyword (files written by :meth:`write`), else
            ``"probability"``.  A density column (``PROBDENSITY`` or unit 1/sr) is
            multiplied by the pixel area when ``kind="probability"``; a per-pixel probability
            column is divided by it when ``kind="density"``.
        hdu
            HDU index or name (default: the first binary table).

        Raises
        ------
        DataFormatError
            Naming the file, the HDU / column and the fix, when the file is missing, not FITS,
            has no suitable table or column, an unknown ordering, an invalid pixel count, or
            (for probability / density maps) negative pixels.
        """
        from astropy.io import fits

        if kind is not None:
            _check_kind(kind)
        if nside is not None:
            nside = _check_nside(nside)
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(
                "sky map file not found", path=path, fix="check the path (a HEALPix FITS file is expected)"
            )
        try:
            hdul = fits.open(path, memmap=False)
        except (OSError, ValueError, TypeError) as exc:
            raise DataFormatError(
                f"not a readable FITS file ({exc})",
                path=path,
                fix="give a HEALPix FITS map (e.g. written by healpy.write_map or a GW alert skymap)",
            ) from None
        with hdul:
            table = _find_table(hdul, hdu, path)
            hdu_name = table.name or str(hdul.index_of(table))
            header = table.header
            names = [str(n) for n in table.columns.names]
            upper = [n.upper() for n in names]
            ordering = str(header.get("ORDERING", "")).strip().upper()
            where = f"HDU {hdu_name}"
            if kind is None:
                kind = str(header.get(_KIND_KEYWORD, "probability")).strip().lower()
                if kind not in _KINDS:
                    raise DataFormatError(
                        f"unknown map kind {kind!r}",
                        path=path,
                        field=f"{where}, {_KIND_KEYWORD}",
                        fix=f"set {_KIND_KEYWORD} to one of {_KINDS} or pass kind=",
                    )
            if "UNIQ" in upper or ordering == "NUNIQ":
                values, meta = _read_moc(table, names, field, nside, kind, path, where)
            else:
                values, meta = _read_flat(table, names, field, kind, path, where)
        meta = {"path": str(path), "hdu": hdu_name, **meta}
        if kind != "value":
            neg = values < 0
            if neg.any():
                raise DataFormatError(
                    f"{int(neg.sum())} negative pixel(s) in a {kind} map (minimum {values.min():.3g})",
                    path=path,
                    field=f"{where}, column {meta['column']}",
                    fix="a prior must be non-negative; read with kind='value' and clip it, or fix the file",
                )
        try:
            out = cls(values, kind=kind, meta=meta)
        except ConfigError as exc:
            raise DataFormatError(
                str(exc),
                path=path,
                field=f"{where}, column {meta['column']}",
                fix="fix or regenerate the file",
            ) from None
        if nside is not None and out.nside != nside:
            out = out.ud_grade(nside)
        return out

    def write(self, path: str | Path, *, nest: bool = False, overwrite: bool = False) -> Path:
        """Write a standard HEALPix FITS map (readable by ``healpy.read_map``), atomically.

        Parameters
        ----------
        path
            Destination file.
        nest
            Store in NESTED ordering (RING by default); :meth:`read` converts back exactly.
        overwrite
            Replace an existing file.

        Returns
        -------
        Path
            ``path``.

        Notes
        -----
        One float64 column (``PROB``, ``PROBDENSITY`` [sr-1] or ``VALUE``), header keywords
        ``PIXTYPE``, ``ORDERING``, ``NSIDE``, ``FIRSTPIX``, ``LASTPIX``, ``INDXSCHM``,
        ``OBJECT``, ``COORDSYS = 'C'`` and ``BNU_KIND`` (the map kind).  ``meta`` is not stored.
        The file is written to a temporary file beside ``path`` and renamed onto it.
        """
        from astropy.io import fits

        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists; pass overwrite=True to replace it")
        data = hp.reorder(self.values, r2n=True) if nest else self.values
        col = fits.Column(
            name=_COLUMN_FOR_KIND[self.kind],
            format="D",
            array=np.ascontiguousarray(data, dtype=np.float64),
            unit="sr-1" if self.kind == "density" else None,
        )
        table = fits.BinTableHDU.from_columns([col])
        h = table.header
        h["PIXTYPE"] = ("HEALPIX", "HEALPIX pixelisation")
        h["ORDERING"] = ("NESTED" if nest else "RING", "Pixel ordering scheme, either RING or NESTED")
        h["COORDSYS"] = ("C", "Ecliptic, Galactic or Celestial (equatorial)")
        h["EXTNAME"] = ("xtension", "name of this binary table extension")
        h["NSIDE"] = (self.nside, "Resolution parameter of HEALPIX")
        h["FIRSTPIX"] = (0, "First pixel # (0 based)")
        h["LASTPIX"] = (self.npix - 1, "Last pixel # (0 based)")
        h["INDXSCHM"] = ("IMPLICIT", "Indexing: IMPLICIT or EXPLICIT")
        h["OBJECT"] = ("FULLSKY", "Sky coverage, either FULLSKY or PARTIAL")
        h[_KIND_KEYWORD] = (self.kind, "bayesnu map kind: probability, density or value")
        hdul = fits.HDUList([fits.PrimaryHDU(), table])
        with atomic_path(path, suffix=".fits") as tmp:
            hdul.writeto(tmp, overwrite=True, checksum=True)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        return path

    # -- resampling and transformations ---------------------------------------------------
    def ud_grade(self, nside: int) -> SkyMap:
        """Change resolution.

        Probability maps keep their total (``healpy.ud_grade(power=-2)``: values are summed
        when degrading and split when upgrading); density and value maps are averaged /
        repeated (plain ``ud_grade``).
        """
        nside = _check_nside(nside)
        if nside == self.nside:
            return self
        power = -2 if self.kind == "probability" else None
        out = hp.ud_grade(self.values, nside_out=nside, order_in="RING", order_out="RING", power=power)
        return self._replace(np.asarray(out, dtype=np.float64))

    def normalised(self) -> SkyMap:
        """Probability maps scaled to sum 1; density maps scaled to integrate to 1 over the sphere."""
        if self.kind == "value":
            raise ConfigError("a 'value' map has no normalisation; convert a prior with kind='probability'")
        total = float(np.sum(self.values))
        if not total > 0:
            raise ConfigError(f"cannot normalise a {self.kind} map whose pixels are all zero")
        if self.kind == "density":
            total *= self.pixel_area_sr
        return self._replace(self.values / total)

    def floored(self, min_value: float) -> SkyMap:
        """Raise pixels below ``min_value`` to it (probability maps are re-normalised afterwards).

        ``min_value`` is in the map's own units (per pixel for probability maps, 1/sr for density).
        """
        min_value = float(min_value)
        if not np.isfinite(min_value) or (self.kind != "value" and min_value < 0):
            raise ConfigError(f"floor must be finite and non-negative, got {min_value!r}")
        out = self._replace(np.maximum(self.values, min_value))
        return out.normalised() if self.kind == "probability" else out

    def smoothed(self, sigma_deg: float) -> SkyMap:
        """Smooth with a Gaussian beam of standard deviation ``sigma_deg`` [deg] (``healpy.smoothing``).

        For probability and density maps the small negative ringing of the harmonic transform is
        clipped to 0, and probability maps are re-normalised.
        """
        sigma_deg = float(sigma_deg)
        if not (np.isfinite(sigma_deg) and sigma_deg >= 0):
            raise ConfigError(f"smoothing sigma must be a non-negative angle in degrees, got {sigma_deg!r}")
        if sigma_deg == 0:
            return self
        out = np.asarray(hp.smoothing(self.values, sigma=np.radians(sigma_deg)), dtype=np.float64)
        if self.kind != "value":
            out = np.clip(out, 0.0, None)
        res = self._replace(out)
        return res.normalised() if self.kind == "probability" else res

    def to_probability(self) -> SkyMap:
        """Per-pixel probability (density x pixel area); a probability map is returned unchanged."""
        if self.kind == "probability":
            return self
        if self.kind == "density":
            return self._replace(self.values * self.pixel_area_sr, kind="probability")
        raise ConfigError(
            "a 'value' map cannot be converted to a probability; build it with kind='probability'"
        )

    def to_density(self) -> SkyMap:
        """Probability per steradian (probability / pixel area); a density map is returned unchanged."""
        if self.kind == "density":
            return self
        if self.kind == "probability":
            return self._replace(self.values / self.pixel_area_sr, kind="density")
        raise ConfigError("a 'value' map cannot be converted to a density; build it with kind='density'")


# --------------------------------------------------------------------------------------------
# FITS reading internals
# --------------------------------------------------------------------------------------------


def _find_table(hdul, hdu: int | str | None, path: Path):
    from astropy.io import fits

    if hdu is not None:
        try:
            table = hdul[hdu]
        except (KeyError, IndexError):
            raise DataFormatError(
                f"no HDU {hdu!r} (the file has {len(hdul)} HDUs)",
                path=path,
                fix="give hdu= as an index or EXTNAME present in the file, or leave it unset",
            ) from None
        if not isinstance(table, fits.BinTableHDU):
            raise DataFormatError(
                f"HDU {hdu!r} is not a binary table",
                path=path,
                fix="HEALPix maps are stored in a BINTABLE extension; pick that HDU",
            )
        return table
    for h in hdul:
        if isinstance(h, fits.BinTableHDU):
            return h
    raise DataFormatError(
        "no binary-table HDU: not a HEALPix map",
        path=path,
        fix="give a HEALPix FITS map (BINTABLE extension with ORDERING / NSIDE keywords)",
    )


def _pick_column(names: list[str], field: int | str, skip: tuple[str, ...], path: Path, where: str) -> str:
    data_cols = [n for n in names if n.upper() not in skip]
    if not data_cols:
        raise DataFormatError(f"{where} has no data column", path=path, fix="the table needs a map column")
    if isinstance(field, str):
        for n in data_cols:
            if n.upper() == field.upper():
                return n
        raise DataFormatError(
            f"{where} has no column {field!r} (columns: {', '.join(names)})",
            path=path,
            fix=f"pass field= one of {data_cols} or its index",
        )
    try:
        return data_cols[int(field)]
    except (IndexError, ValueError, TypeError):
        raise DataFormatError(
            f"{where} has no data column number {field!r} (data columns: {', '.join(data_cols)})",
            path=path,
            fix=f"pass field= an index below {len(data_cols)} or a column name",
        ) from None


def _is_density(table, column: str) -> bool:
    if column.upper() in _DENSITY_COLUMNS:
        return True
    idx = [n.upper() for n in table.columns.names].index(column.upper())
    unit = table.columns[idx].unit
    return unit is not None and str(unit).replace(" ", "").lower() in _DENSITY_UNITS


def _convert_kind(values: np.ndarray, density: bool, kind: str, pixel_area_sr: float) -> np.ndarray:
    if kind == "probability" and density:
        return values * pixel_area_sr
    if kind == "density" and not density:
        return values / pixel_area_sr
    return values


def _column_values(table, column: str, path: Path, where: str) -> np.ndarray:
    raw = np.asarray(table.data[column])
    if not np.issubdtype(raw.dtype, np.number):
        raise DataFormatError(
            f"column is not numeric (dtype {raw.dtype})",
            path=path,
            field=f"{where}, column {column}",
            fix="choose a numeric map column with field=",
        )
    return np.asarray(raw, dtype=np.float64).ravel()


def _blank_to_zero(values: np.ndarray) -> tuple[np.ndarray, int]:
    blank = ~np.isfinite(values) | np.isclose(values, hp.UNSEEN, rtol=0, atol=1e25)
    if blank.any():
        values = np.where(blank, 0.0, values)
    return values, int(blank.sum())


def _read_flat(table, names, field, kind, path: Path, where: str) -> tuple[np.ndarray, dict[str, Any]]:
    header = table.header
    ordering = str(header.get("ORDERING", "")).strip().upper()
    if ordering not in ("RING", "NESTED"):
        raise DataFormatError(
            f"unknown pixel ordering {header.get('ORDERING')!r} in {where}",
            path=path,
            field="ORDERING",
            fix="set the ORDERING keyword to RING or NESTED (or NUNIQ with a UNIQ column)",
        )
    schm = str(header.get("INDXSCHM", "IMPLICIT")).strip().upper()
    upper = [n.upper() for n in names]
    explicit = schm == "EXPLICIT" or ("PIXEL" in upper and schm != "IMPLICIT")
    column = _pick_column(names, field, ("PIXEL",) if explicit else (), path, where)
    values = _column_values(table, column, path, where)
    if explicit:
        if "PIXEL" not in upper:
            raise DataFormatError(
                f"explicit (partial-sky) map without a PIXEL column in {where}",
                path=path,
                fix="add the PIXEL column or set INDXSCHM = 'IMPLICIT' for a full-sky map",
            )
        try:
            nside = _check_nside(int(header["NSIDE"]), "NSIDE")
        except (KeyError, ValueError, TypeError, ConfigError):
            raise DataFormatError(
                f"explicit map needs a valid NSIDE keyword, got {header.get('NSIDE')!r}",
                path=path,
                field=f"{where}, NSIDE",
                fix="set NSIDE to the map resolution (a power of 2)",
            ) from None
        pix = np.asarray(table.data[names[upper.index("PIXEL")]]).ravel().astype(np.int64)
        npix = hp.nside2npix(nside)
        if pix.size != values.size or (pix.size and (pix.min() < 0 or pix.max() >= npix)):
            raise DataFormatError(
                f"PIXEL indices out of range for NSIDE {nside} (0..{npix - 1}) or not one per value",
                path=path,
                field=f"{where}, column PIXEL",
                fix="the PIXEL column must hold one valid pixel index per row",
            )
        values, n_blank = _blank_to_zero(values)
        full = np.zeros(npix, dtype=np.float64)
        full[pix] = values
        values = full
    else:
        nside = _npix_to_nside(values.size)
        if nside is None:
            raise DataFormatError(
                f"{values.size} pixels is not a HEALPix pixel count (12 * nside**2)",
                path=path,
                field=f"{where}, column {column}",
                fix="a full-sky map needs 12 * nside**2 values; for a partial map use INDXSCHM = 'EXPLICIT'",
            )
        hdr_nside = header.get("NSIDE")
        if hdr_nside is not None and int(hdr_nside) != nside:
            raise DataFormatError(
                f"NSIDE keyword {hdr_nside} disagrees with the {values.size} pixels (nside {nside})",
                path=path,
                field=f"{where}, NSIDE",
                fix="correct the NSIDE keyword or the column length",
            )
        values, n_blank = _blank_to_zero(values)
    if ordering == "NESTED":
        values = hp.reorder(values, n2r=True)
    density = _is_density(table, column)
    values = _convert_kind(values, density, kind, 4.0 * np.pi / values.size)
    meta = {
        "column": column,
        "ordering": ordering,
        "indxschm": "EXPLICIT" if explicit else "IMPLICIT",
        "file_kind": "density" if density else "per-pixel",
        "n_blank": n_blank,
        "coordsys": str(header.get("COORDSYS", "")).strip(),
    }
    return values, meta


def uniq_to_order_ipix(uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split NUNIQ pixel indices into (order, NESTED pixel index).

    ``uniq = 4 * 4**order + ipix``, so ``order = floor(log2(uniq / 4) / 2)`` and
    ``ipix = uniq - 4 * 4**order``.  Computed with integers (exact for every order up to 29).
    """
    u = np.asarray(uniq, dtype=np.int64)
    if u.size and u.min() < 4:
        raise ConfigError("NUNIQ indices are >= 4")
    order = np.floor(np.log2(u / 4.0) / 2.0).astype(np.int64)
    # exact integer correction of any floating-point rounding at the order boundaries
    order = np.where((np.int64(4) << (2 * order)) > u, order - 1, order)
    order = np.where((np.int64(4) << (2 * (order + 1))) <= u, order + 1, order)
    ipix = u - (np.int64(4) << (2 * order))
    return order, ipix


def _read_moc(table, names, field, nside, kind, path: Path, where: str) -> tuple[np.ndarray, dict[str, Any]]:
    upper = [n.upper() for n in names]
    if "UNIQ" not in upper:
        raise DataFormatError(
            f"ORDERING = 'NUNIQ' but {where} has no UNIQ column",
            path=path,
            fix="multi-order maps need a UNIQ column (see the LIGO/Virgo/KAGRA skymap format)",
        )
    if field == 0 and "PROBDENSITY" in upper:
        field = "PROBDENSITY"
    column = _pick_column(names, field, ("UNIQ",), path, where)
    values = _column_values(table, column, path, where)
    uniq = np.asarray(table.data[names[upper.index("UNIQ")]]).ravel()
    if not np.issubdtype(uniq.dtype, np.integer):
        raise DataFormatError(
            f"UNIQ column is not integer (dtype {uniq.dtype})",
            path=path,
            field=f"{where}, column UNIQ",
            fix="UNIQ must hold 64-bit integer NUNIQ indices",
        )
    uniq = uniq.astype(np.int64)
    if uniq.size == 0 or uniq.min() < 4:
        raise DataFormatError(
            "UNIQ column is empty or holds indices below 4",
            path=path,
            field=f"{where}, column UNIQ",
            fix="NUNIQ indices are 4 * 4**order + ipix >= 4",
        )
    order, ipix = uniq_to_order_ipix(uniq)
    if order.max() > _MAX_ORDER or (ipix >= 12 * 4**order).any():
        raise DataFormatError(
            "invalid NUNIQ index",
            path=path,
            field=f"{where}, column UNIQ",
            fix="NUNIQ indices are 4 * 4**order + ipix with ipix < 12 * 4**order",
        )
    values, n_blank = _blank_to_zero(values)
    if nside is None:
        target_order = min(int(order.max()), int(np.log2(MOC_DEFAULT_MAX_NSIDE)))
    else:
        target_order = int(np.log2(nside))
    target_nside = 2**target_order
    npix = hp.nside2npix(target_nside)
    # Flatten in NESTED ordering, area-weighted: a coarse pixel's value fills all its children
    # at the target order; finer pixels are averaged into their parent.
    acc = np.zeros(npix, dtype=np.float64)
    coarse = order <= target_order
    if coarse.any():
        shift = 2 * (target_order - order[coarse])
        start = ipix[coarse] << shift
        n_child = np.int64(1) << shift
        idx = np.repeat(start, n_child) + (
            np.arange(int(n_child.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_child) - n_child, n_child)
        )
        np.add.at(acc, idx, np.repeat(values[coarse], n_child))
    fine = ~coarse
    if fine.any():
        shift = 2 * (order[fine] - target_order)
        parent = ipix[fine] >> shift
        # each fine pixel covers 4**-(order - target) of its parent: weight the average by area
        np.add.at(acc, parent, values[fine] * np.exp2(-shift.astype(np.float64)))
    ring = hp.reorder(acc, n2r=True)
    density = _is_density(table, column)
    ring = _convert_kind(ring, density, kind, 4.0 * np.pi / npix)
    meta = {
        "column": column,
        "ordering": "NUNIQ",
        "moc_max_order": int(order.max()),
        "moc_min_order": int(order.min()),
        "file_kind": "density" if density else "per-pixel",
        "n_blank": n_blank,
        "coordsys": str(table.header.get("COORDSYS", "")).strip(),
    }
    return ring, meta


# --------------------------------------------------------------------------------------------
# pixel geometry
# --------------------------------------------------------------------------------------------


def pixel_radec_deg(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec [deg] of the centres of all RING pixels at ``nside``."""
    nside = _check_nside(nside)
    ra, dec = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def pixels_in_dec_range(nside: int, dec_min_deg: float, dec_max_deg: float) -> np.ndarray:
    """RING indices of the pixels whose centres have ``dec_min_deg <= Dec <= dec_max_deg``."""
    if not -90.0 <= dec_min_deg <= dec_max_deg <= 90.0:
        raise ConfigError(
            f"need -90 <= dec_min <= dec_max <= 90 [deg], got dec_min={dec_min_deg}, dec_max={dec_max_deg}"
        )
    _, dec = pixel_radec_deg(nside)
    return np.flatnonzero((dec >= dec_min_deg) & (dec <= dec_max_deg))


def _angular_chord2(nside: int, ra_deg: float, dec_deg: float) -> np.ndarray:
    """Squared chord ``|v - v0|^2 = 2 (1 - cos psi)`` from a position to all pixel centres."""
    if not -90.0 <= dec_deg <= 90.0:
        raise ConfigError(f"declination must lie in [-90, 90] deg, got {dec_deg!r}")
    v0 = hp.ang2vec(float(ra_deg), float(dec_deg), lonlat=True)
    x, y, z = hp.pix2vec(nside, np.arange(hp.nside2npix(nside)))
    return (x - v0[0]) ** 2 + (y - v0[1]) ** 2 + (z - v0[2]) ** 2


# --------------------------------------------------------------------------------------------
# prior builders
# --------------------------------------------------------------------------------------------


def prior_from_array(values: np.ndarray, *, nest: bool = False) -> SkyMap:
    """A normalised probability prior from a full-sky array (RING, or NESTED when ``nest``).

    Raises
    ------
    ConfigError
        Invalid length, non-finite or negative values, or all zeros.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or _npix_to_nside(v.size) is None:
        raise ConfigError(f"a HEALPix map has 12 * nside**2 values (nside a power of 2); got shape {v.shape}")
    if nest:
        v = hp.reorder(v, n2r=True)
    return SkyMap(v, kind="probability").normalised()


def _check_oversample(nside: int, oversample: int) -> int:
    if int(oversample) != oversample or oversample < 1 or (int(oversample) & (int(oversample) - 1)):
        raise ConfigError(f"oversample must be a power of 2 >= 1, got {oversample!r}")
    return _check_nside(nside * int(oversample), "nside * oversample")


def _prior_from_logw(logw: np.ndarray, nside: int, meta: dict[str, Any]) -> SkyMap:
    w = np.exp(logw - logw.max())  # the nearest pixel has weight 1: never an all-zero map
    m = SkyMap(w / w.sum(), kind="probability", meta=meta)
    return m.ud_grade(nside).normalised()


def prior_gaussian(
    ra_deg: float, dec_deg: float, sigma_deg: float, nside: int, *, oversample: int = 1
) -> SkyMap:
    """Gaussian prior ``exp(-psi^2 / (2 sigma^2))`` in the great-circle distance ``psi``.

    Parameters
    ----------
    ra_deg, dec_deg
        Centre [deg].
    sigma_deg
        Width [deg].
    nside
        Resolution of the returned map.
    oversample
        Evaluate at pixel centres of ``nside * oversample`` and sum back to ``nside`` (a power
        of 2); use 4-8 when ``sigma_deg`` is comparable to the pixel size.

    Returns
    -------
    SkyMap
        Normalised per-pixel probability.
    """
    nside = _check_nside(nside)
    fine = _check_oversample(nside, oversample)
    sigma = np.radians(float(sigma_deg))
    if not (np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive angle in degrees, got {sigma_deg!r}")
    chord2 = _angular_chord2(fine, ra_deg, dec_deg)
    psi = 2.0 * np.arcsin(np.clip(np.sqrt(chord2) / 2.0, 0.0, 1.0))
    meta = {
        "prior": "gaussian",
        "ra_deg": float(ra_deg),
        "dec_deg": float(dec_deg),
        "sigma_deg": float(sigma_deg),
    }
    return _prior_from_logw(-0.5 * (psi / sigma) ** 2, nside, meta)


def prior_vmf(ra_deg: float, dec_deg: float, sigma_deg: float, nside: int, *, oversample: int = 1) -> SkyMap:
    """Von Mises-Fisher prior ``exp(kappa (cos psi - 1))`` with ``kappa = 1 / sigma^2`` [sigma in rad].

    ``cos psi - 1 = -|v - v0|^2 / 2`` is used for numerical stability at large ``kappa``.
    Parameters as for :func:`prior_gaussian`; for ``sigma << 1 rad`` both priors coincide.
    """
    nside = _check_nside(nside)
    fine = _check_oversample(nside, oversample)
    sigma = np.radians(float(sigma_deg))
    if not (np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive angle in degrees, got {sigma_deg!r}")
    kappa = 1.0 / sigma**2
    chord2 = _angular_chord2(fine, ra_deg, dec_deg)
    meta = {"prior": "vmf", "ra_deg": float(ra_deg), "dec_deg": float(dec_deg), "sigma_deg": float(sigma_deg)}
    return _prior_from_logw(-0.5 * kappa * chord2, nside, meta)


# --------------------------------------------------------------------------------------------
# prior term of TS maps
# --------------------------------------------------------------------------------------------


def prior_ts_term(prior: SkyMap, *, floor: float | None = None) -> np.ndarray:
    """Per-pixel TS penalty of a spatial prior: ``2 ln(p / max(p))`` (<= 0, 0 at the prior's peak).

    This is the convention of IceCube's csky ``SpatialPriorTrialRunner`` (its
    ``llh_prior_term`` is added to the TS of each scanned pixel, and the sum clipped at 0) and of
    SkyLab's ``SpatialPrior`` (``ts_norm = ln max(p)`` is subtracted from ``ln p`` "to ensure the
    prior always acts as a penalty term <= 0").  The factor 2 puts ``ln p`` on the scale of
    ``TS = 2 ln(L / L0)``.  The ratio makes the term independent of the prior's normalisation and
    of whether it is a probability or a density map.

    Parameters
    ----------
    prior
        Probability or density map.
    floor
        When given, pixels below ``floor`` (in the map's units) are raised to it first, so that
        zero-prior pixels get the finite term ``2 ln(floor / max p)`` instead of ``-inf``.

    Returns
    -------
    np.ndarray
        RING array of length ``prior.npix``; ``-inf`` where the prior is 0 and no floor is given.
    """
    if not isinstance(prior, SkyMap):
        raise ConfigError(f"prior must be a SkyMap, got {type(prior).__name__}")
    if prior.kind == "value":
        raise ConfigError("the prior must be a 'probability' or 'density' map, not a 'value' map")
    p = prior.values
    if floor is not None:
        floor = float(floor)
        if not (np.isfinite(floor) and floor > 0):
            raise ConfigError(f"floor must be a positive number, got {floor!r}")
        p = np.maximum(p, floor)
    pmax = float(p.max())
    if not pmax > 0:
        raise ConfigError("the prior is zero everywhere")
    with np.errstate(divide="ignore"):
        return 2.0 * np.log(p / pmax)


def ts_with_prior(ts: np.ndarray, prior: SkyMap, *, clip_zero: bool = False) -> np.ndarray:
    """TS map plus the prior term: ``TS + 2 ln(p / max p)`` (see :func:`prior_ts_term`).

    Parameters
    ----------
    ts
        RING TS map at the prior's resolution.
    prior
        Spatial prior (resample it first with :meth:`SkyMap.ud_grade` if the scan is coarser/finer).
    clip_zero
        Clip the result at 0, as csky does before picking the hottest spot.
    """
    ts = np.asarray(ts, dtype=np.float64)
    if ts.shape != (prior.npix,):
        raise ConfigError(
            f"TS map of shape {ts.shape} does not match the prior "
            f"(nside {prior.nside}, {prior.npix} pixels); "
            "resample the prior with prior.ud_grade(nside_of_scan)"
        )
    out = ts + prior_ts_term(prior)
    return np.maximum(out, 0.0) if clip_zero else out


# --------------------------------------------------------------------------------------------
# credible regions
# --------------------------------------------------------------------------------------------


def _as_probability(prob: np.ndarray | SkyMap) -> np.ndarray:
    if isinstance(prob, SkyMap):
        return prob.to_probability().values
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 1 or _npix_to_nside(p.size) is None:
        raise ConfigError(f"a HEALPix map has 12 * nside**2 values (nside a power of 2); got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ConfigError("a probability map must be finite and non-negative")
    return p


def credible_levels(prob: np.ndarray | SkyMap) -> np.ndarray:
    """Greedy credible level of every pixel (as ``ligo.skymap``'s ``find_greedy_credible_levels``).

    The level of a pixel is the total probability of all pixels at least as probable as it
    (ties share the level of the whole tied group), the map being normalised first.  The
    region *within* probability ``q`` is ``credible_levels(p) <= q``; the smallest region
    holding *at least* ``q`` (:func:`credible_region_mask`) also takes the pixel that
    crosses ``q``.

    Parameters
    ----------
    prob
        Per-pixel probability (array or SkyMap; a density SkyMap is converted).
    """
    p = _as_probability(prob)
    total = p.sum()
    if not total > 0:
        raise ConfigError("the probability map is zero everywhere")
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    cs = np.cumsum(ps) / total
    last_of_tie = np.searchsorted(-ps, -ps, side="right") - 1
    levels = np.empty_like(p)
    levels[order] = np.minimum(cs[last_of_tie], 1.0)
    return levels


def credible_region_mask(prob: np.ndarray | SkyMap, level: float) -> np.ndarray:
    """Boolean RING mask of the smallest region holding at least ``level`` of the probability.

    Pixels are taken in order of decreasing probability until their total reaches
    ``level`` (the pixel that crosses it included), so a map whose most probable pixel
    alone holds more than ``level`` gives that one pixel, never an empty region.
    """
    p = _as_probability(prob)
    before = credible_levels(p) - p / p.sum()
    return before < _check_level(level)


def credible_area_deg2(prob: np.ndarray | SkyMap, level: float) -> float:
    """Area [deg^2] of the smallest region holding ``level`` of the probability (whole pixels)."""
    mask = credible_region_mask(prob, level)
    npix = mask.size
    return float(mask.sum() * (4.0 * np.pi / npix) * np.degrees(1.0) ** 2)


def contains(prob: np.ndarray | SkyMap, ra_deg: float, dec_deg: float, level: float) -> bool:
    """Whether the position (RA, Dec) [deg] lies inside the ``level`` credible region (coverage tests)."""
    mask = credible_region_mask(prob, level)
    if not -90.0 <= dec_deg <= 90.0:
        raise ConfigError(f"declination must lie in [-90, 90] deg, got {dec_deg!r}")
    nside = int(hp.npix2nside(mask.size))
    pix = hp.ang2pix(nside, float(ra_deg), float(dec_deg), lonlat=True)
    return bool(mask[pix])
