"""All-sky figures of HEALPix maps: priors, TS maps and posteriors (matplotlib only).

Maps are drawn by sampling the RING map on a regular longitude / latitude grid
(``healpy.ang2pix``) and ``pcolormesh`` on a matplotlib geographic projection (Mollweide or
Aitoff).  Astronomical convention: RA increases to the left, RA = 180 deg in the centre.
Nothing touches pyplot's global state: a new :class:`matplotlib.figure.Figure` is created when
no axes are given, and nothing is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError
from bayesnu.sky.maps import SkyMap, credible_levels, ts_with_prior

_PROJECTIONS = ("mollweide", "aitoff", "hammer")
_GEO_TICKS_DEG = np.arange(-150.0, 151.0, 30.0)


def _ra_to_lon(ra_rad: np.ndarray) -> np.ndarray:
    """Projection longitude [rad, -pi..pi] of RA [rad]: RA = pi at the centre, RA increasing to the left."""
    return np.pi - np.mod(ra_rad, 2.0 * np.pi)


def _lon_to_ra(lon_rad: np.ndarray) -> np.ndarray:
    return np.mod(np.pi - lon_rad, 2.0 * np.pi)


def _as_ring_values(values: np.ndarray | SkyMap) -> np.ndarray:
    v = values.values if isinstance(values, SkyMap) else np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not hp.isnpixok(v.size):
        raise ConfigError(f"expected a RING HEALPix map of 12 * nside**2 values, got shape {v.shape}")
    return v


def _sample_grid(
    values: np.ndarray, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cell edges (lon, lat) and centres sampled from the map: returns lon_e, lat_e, lon_c/lat_c mesh, Z."""
    nside = hp.npix2nside(values.size)
    n_lon = int(resolution)
    n_lat = max(n_lon // 2, 2)
    lon_e = np.linspace(-np.pi, np.pi, n_lon + 1)
    lat_e = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)
    lon_c = 0.5 * (lon_e[1:] + lon_e[:-1])
    lat_c = 0.5 * (lat_e[1:] + lat_e[:-1])
    lon_g, lat_g = np.meshgrid(lon_c, lat_c)
    pix = hp.ang2pix(nside, np.pi / 2 - lat_g, _lon_to_ra(lon_g))
    return lon_e, lat_e, (lon_g, lat_g), values[pix]


def _format_ra_ticks(ax: Axes, ra_units: str) -> None:
    ticks = np.radians(_GEO_TICKS_DEG)
    ra = np.degrees(_lon_to_ra(ticks))
    if ra_units == "hours":
        labels = [f"{round(r / 15.0) % 24:d}h" for r in ra]
    elif ra_units == "degrees":
        labels = [f"{round(r) % 360:d}°" for r in ra]
    else:
        raise ConfigError(f"ra_units must be 'hours' or 'degrees', got {ra_units!r}")
    ax.set_xticks(ticks)
    # RA labels sit inside the map: white with a dark outline reads on any colour map
    outline = [patheffects.withStroke(linewidth=2.0, foreground="0.15")]
    ax.set_xticklabels(labels, fontsize="small", color="white", path_effects=outline)
    ax.tick_params(axis="y", labelsize="small")


def _galactic_plane(ax: Axes, **kw: Any) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    l_deg = np.linspace(0.0, 360.0, 721)
    plane = SkyCoord(l=l_deg * u.deg, b=np.zeros_like(l_deg) * u.deg, frame="galactic").icrs
    lon = _ra_to_lon(plane.ra.radian)
    lat = plane.dec.radian
    order = np.argsort(lon)
    lon, lat = lon[order], lat[order]
    # break the line where it wraps around the map edge
    jump = np.flatnonzero(np.abs(np.diff(lon)) > np.pi / 2) + 1
    lon = np.insert(lon, jump, np.nan)
    lat = np.insert(lat, jump, np.nan)
    style = {"color": "0.6", "lw": 0.8, "alpha": 0.8}
    style.update(kw)
    ax.plot(lon, lat, **style, label="Galactic plane")
    gc = SkyCoord(l=0.0 * u.deg, b=0.0 * u.deg, frame="galactic").icrs
    ax.plot(
        _ra_to_lon(gc.ra.radian),
        gc.dec.radian,
        marker="o",
        ms=4,
        mfc="none",
        mec=style["color"],
        ls="none",
        label="Galactic centre",
    )


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def plot_sky_map(
    values: np.ndarray | SkyMap,
    *,
    ax: Axes | None = None,
    projection: str = "mollweide",
    title: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    clip_min: float | None = None,
    log: bool = False,
    label: str | None = None,
    contours: np.ndarray | None = None,
    levels: Sequence[float] = (0.5, 0.9),
    galactic_plane: bool = True,
    mark: tuple[float, float] | None = None,
    mark_label: str | None = None,
    ra_units: str = "hours",
    resolution: int = 720,
    colorbar: bool = True,
    save: str | Path | None = None,
    dpi: int = 150,
) -> Figure:
    """Draw a RING HEALPix map on an all-sky projection.

    Parameters
    ----------
    values
        RING map (array or :class:`~bayesnu.sky.maps.SkyMap`).  Non-finite pixels are left blank.
    ax
        Existing geographic axes (``projection`` of ``mollweide`` / ``aitoff`` / ``hammer``);
        a new figure is created when None.
    projection
        ``"mollweide"`` or ``"aitoff"`` (or ``"hammer"``) for a new figure.
    title, cmap, vmin, vmax
        As in matplotlib.
    clip_min
        Values below are raised to it (e.g. 0 for TS maps).
    log
        Colour by ``log10`` of the values (non-positive pixels are left blank).
    label
        Colour-bar label.
    contours
        Per-pixel credible-level map (:func:`~bayesnu.sky.maps.credible_levels`) whose
        ``levels`` are drawn as contours.
    levels
        Credible levels of the contours.
    galactic_plane
        Draw the Galactic plane (b = 0) and the Galactic centre.
    mark
        (RA, Dec) [deg] to mark with a star (hottest spot, true source, ...).
    mark_label
        Legend entry of the mark.
    ra_units
        RA tick labels in ``"hours"`` or ``"degrees"``.
    resolution
        Number of longitude samples (latitude: half of it).
    colorbar
        Add a horizontal colour bar.
    save
        Also write the figure there (atomically; format from the suffix).
    dpi
        Resolution of the saved file.

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = _as_ring_values(values)
    if resolution < 8:
        raise ConfigError(f"resolution must be at least 8 samples in longitude, got {resolution}")
    if ax is None:
        if projection not in _PROJECTIONS:
            raise ConfigError(f"projection must be one of {_PROJECTIONS}, got {projection!r}")
        fig = Figure(figsize=(8.0, 5.0), layout="constrained")
        ax = fig.add_subplot(projection=projection)
    else:
        if getattr(ax, "name", None) not in _PROJECTIONS:
            raise ConfigError(
                f"ax must be a geographic axes ({', '.join(_PROJECTIONS)}), got {getattr(ax, 'name', ax)!r}; "
                "create it with fig.add_subplot(projection='mollweide')"
            )
        fig = ax.figure
    data = v.astype(np.float64, copy=True)
    if clip_min is not None:
        data = np.where(np.isnan(data), data, np.maximum(data, clip_min))
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            data = np.where(data > 0, np.log10(np.where(data > 0, data, 1.0)), np.nan)
    lon_e, lat_e, _, z = _sample_grid(data, resolution)
    z = np.ma.masked_invalid(z)
    mesh = ax.pcolormesh(lon_e, lat_e, z, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
    if contours is not None:
        c = _as_ring_values(contours)
        if c.size != v.size:
            c = hp.ud_grade(c, hp.npix2nside(v.size))
        lv = sorted(float(x) for x in levels)
        if any(not 0 < x <= 1 for x in lv):
            raise ConfigError(f"contour levels must lie in (0, 1], got {levels}")
        _, _, (lon_g, lat_g), zc = _sample_grid(c, resolution)
        cs = ax.contour(lon_g, lat_g, zc, levels=lv, colors="white", linewidths=0.9)
        ax.clabel(cs, fmt={x: f"{x:.0%}" for x in lv}, fontsize="x-small")
    if galactic_plane:
        _galactic_plane(ax)
    if mark is not None:
        ra_m, dec_m = float(mark[0]), float(mark[1])
        ax.plot(
            _ra_to_lon(np.radians(ra_m)),
            np.radians(dec_m),
            marker="*",
            ms=12,
            mfc="red",
            mec="white",
            mew=0.6,
            ls="none",
            label=mark_label,
        )
    ax.grid(True, color="0.5", alpha=0.4, lw=0.5)
    _format_ra_ticks(ax, ra_units)
    ax.set_xlabel("RA")
    ax.set_ylabel("Dec")
    if title:
        ax.set_title(title, pad=14)
    if mark is not None and mark_label:
        ax.legend(loc="lower right", fontsize="x-small", framealpha=0.6)
    if colorbar:
        cb = fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.7, pad=0.06)
        if label:
            cb.set_label(f"log10 {label}" if log else label)
    if save is not None:
        _save(fig, save, dpi)
    return fig


def plot_prior(prior: SkyMap, **kw: Any) -> Figure:
    """Draw a spatial prior (keyword arguments go to :func:`plot_sky_map`)."""
    if not isinstance(prior, SkyMap):
        raise ConfigError(f"prior must be a SkyMap, got {type(prior).__name__}")
    default_label = {"probability": "prior probability per pixel", "density": "prior density [1/sr]"}
    kw.setdefault("label", default_label.get(prior.kind, "prior"))
    kw.setdefault("title", "Spatial prior")
    return plot_sky_map(prior, **kw)


def plot_ts_map(
    ts: np.ndarray | SkyMap,
    *,
    prior: SkyMap | None = None,
    with_prior: bool = False,
    clip_zero: bool = True,
    mark: tuple[float, float] | str | None = None,
    **kw: Any,
) -> Figure:
    """Draw a TS map, optionally with the spatial-prior term added and the prior's credible contours.

    Parameters
    ----------
    ts
        RING TS map.
    prior
        Spatial prior.  Its credible contours are drawn unless ``contours`` is given.
    with_prior
        Add ``2 ln(p / max p)`` to the TS (:func:`~bayesnu.sky.maps.ts_with_prior`).
    clip_zero
        Clip the TS at 0, as csky does.
    mark
        (RA, Dec) [deg] to mark, or ``"hottest"`` for the maximum of the drawn map.
    **kw
        Passed to :func:`plot_sky_map`.
    """
    t = np.array(_as_ring_values(ts), dtype=np.float64)
    if with_prior:
        if prior is None:
            raise ConfigError("with_prior=True needs a prior")
        t = ts_with_prior(t, prior)
    if clip_zero:
        t = np.where(np.isnan(t), t, np.maximum(t, 0.0))
    if prior is not None and "contours" not in kw:
        p = prior if prior.nside == hp.npix2nside(t.size) else prior.ud_grade(hp.npix2nside(t.size))
        kw["contours"] = credible_levels(p)
    if isinstance(mark, str):
        if mark != "hottest":
            raise ConfigError(f"mark must be (RA, Dec) in degrees or 'hottest', got {mark!r}")
        finite = np.where(np.isfinite(t), t, -np.inf)
        ra, dec = hp.pix2ang(hp.npix2nside(t.size), int(np.argmax(finite)), lonlat=True)
        mark = (float(ra), float(dec))
        kw.setdefault("mark_label", "hottest spot")
    kw.setdefault("label", "TS with spatial prior" if with_prior else "TS")
    kw.setdefault("cmap", "magma")
    return plot_sky_map(t, mark=mark, **kw)


def plot_posterior_map(
    prob: np.ndarray | SkyMap,
    *,
    levels: Sequence[float] = (0.5, 0.9),
    mark: tuple[float, float] | None = None,
    **kw: Any,
) -> Figure:
    """Draw a posterior sky map with its greedy credible contours at ``levels``.

    ``prob`` is a per-pixel probability (array or SkyMap; a density SkyMap is converted for the
    contours and drawn as it is).  Keyword arguments go to :func:`plot_sky_map`.
    """
    kw.setdefault("label", "posterior probability per pixel")
    kw.setdefault("title", "Posterior source position")
    return plot_sky_map(prob, contours=credible_levels(prob), levels=levels, mark=mark, **kw)
