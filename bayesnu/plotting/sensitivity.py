r"""Sensitivity-curve plot: sensitivity and discovery potentials versus declination.

:func:`plot_sensitivity_curve` draws a table of
:func:`bayesnu.analyses.ps_frequentist.sensitivity_curve` (or of the analysis-independent
:func:`bayesnu.frequentist.sensitivity.sensitivity_curve` with a flux conversion) the way
IceCube papers show it: :math:`E_0^2\,dN/dE(E_0)` [GeV cm^-2 s^-1] (or :math:`\Phi_0`)
on a log axis versus :math:`\sin\delta`, one line per quantity (the sensitivity and every
``disc{n}sigma`` discovery potential in the table) with a band of ``n_err`` bootstrap
standard errors around it. Nothing touches pyplot's global state: a new
:class:`matplotlib.figure.Figure` is created when no axes are given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError

__all__ = ["curve_quantities", "plot_sensitivity_curve"]

_UNITS = {"e2dnde": "GeV cm-2 s-1", "phi0": "GeV-1 cm-2 s-1"}
_DISC = re.compile(r"^disc([0-9.]+)sigma_ns$")


def curve_quantities(table: Any) -> list[tuple[str, str]]:
    """The quantities of a sensitivity-curve table: ``(column prefix, legend label)`` pairs.

    The sensitivity (``sens_``) first, then the discovery potentials (``disc{n}sigma_``)
    in increasing significance; the labels carry the passing fraction from the table's
    ``sensitivity_beta`` / ``discovery_beta`` metadata when present.
    """
    meta = getattr(table, "meta", {}) or {}
    out: list[tuple[str, str]] = []
    if "sens_ns" in table.colnames:
        beta = meta.get("sensitivity_beta")
        out.append(("sens_", "sensitivity" + (f" ({float(beta):.0%})" if beta is not None else "")))
    discs = sorted(
        (float(m.group(1)), m.group(1)) for m in (_DISC.match(c) for c in table.colnames) if m is not None
    )
    beta = meta.get("discovery_beta")
    for sigma, text in discs:
        label = f"{sigma:g}$\\sigma$ discovery potential" + (
            f" ({float(beta):.0%})" if beta is not None else ""
        )
        out.append((f"disc{text}sigma_", label))
    return out


def _values(table: Any, name: str, unit: str) -> np.ndarray:
    c = table[name]
    if getattr(c, "unit", None) is not None:
        return np.asarray(c.quantity.to_value(unit), dtype=float)
    return np.asarray(c, dtype=float)


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def plot_sensitivity_curve(
    table: Any,
    *,
    ax: Axes | None = None,
    flux: str = "e2dnde",
    n_err: float = 1.0,
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 120,
) -> Axes:
    r"""Plot sensitivity and discovery potentials in flux versus :math:`\sin\delta` (log y axis).

    Parameters
    ----------
    table
        Sensitivity-curve table (astropy ``Table``): ``dec_deg`` (or ``sin_dec``) and, for
        every quantity, ``{prefix}ns``, ``{prefix}ns_err`` and ``{prefix}{flux}`` with
        optionally ``{prefix}{flux}_err`` (otherwise the ns error is scaled by
        flux / ns); see :func:`curve_quantities` for the prefixes.
    ax
        Matplotlib axes (default: a new figure).
    flux
        ``"e2dnde"``: :math:`E_0^2\,dN/dE` [GeV cm^-2 s^-1]; ``"phi0"``: :math:`\Phi_0`
        at :math:`E_0` [GeV^-1 cm^-2 s^-1].
    n_err
        Half-width of the uncertainty bands in standard errors (0: no bands).
    title
        Axes title (default: seasons and spectral index from the table's metadata).
    path
        Also write the figure here (format from the suffix, e.g. ``.png``, ``.pdf``).
    dpi
        Resolution of the written figure.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        If ``flux`` is unknown, or the table has no declination column or no quantity
        with flux columns (a curve computed without a flux conversion).
    """
    if flux not in _UNITS:
        raise ConfigError(f"flux must be one of {sorted(_UNITS)}, got {flux!r}")
    if "sin_dec" in table.colnames:
        x = np.asarray(table["sin_dec"], dtype=float)
    elif "dec_deg" in table.colnames:
        x = np.sin(np.radians(_values(table, "dec_deg", "deg")))
    else:
        raise ConfigError("the sensitivity-curve table has no 'dec_deg' or 'sin_dec' column")
    quantities = [(p, lab) for p, lab in curve_quantities(table) if p + flux in table.colnames]
    if not quantities:
        raise ConfigError(
            f"the table has no '*_{flux}' flux columns; compute the curve with a flux conversion "
            "(bayesnu.analyses.ps_frequentist.sensitivity_curve adds them)"
        )
    if ax is None:
        ax = Figure(figsize=(6.4, 4.4), layout="constrained").add_subplot()
    order = np.argsort(x)
    unit = _UNITS[flux]
    for (prefix, label), ls in zip(quantities, ["-", "--", ":", "-."] * 4):
        y = _values(table, prefix + flux, unit)
        if prefix + flux + "_err" in table.colnames:
            err = _values(table, prefix + flux + "_err", unit)
        else:
            ns = np.asarray(table[prefix + "ns"], dtype=float)
            err = np.asarray(table[prefix + "ns_err"], dtype=float) * np.divide(
                y, ns, out=np.full_like(y, np.nan), where=ns > 0
            )
        (line,) = ax.plot(x[order], y[order], ls=ls, marker="o", ms=3, label=label)
        if n_err > 0:
            lo = np.clip(y - n_err * err, y * 1e-3, None)
            ax.fill_between(
                x[order], lo[order], (y + n_err * err)[order], color=line.get_color(), alpha=0.25, lw=0
            )
    meta = getattr(table, "meta", {}) or {}
    ax.set_yscale("log")
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel(r"$\sin\delta$")
    e0 = meta.get("e0_gev")
    at = f" at {float(e0):g} GeV" if e0 is not None else ""
    if flux == "e2dnde":
        ax.set_ylabel(rf"$E_0^2\,dN/dE${at} [GeV cm$^{{-2}}$ s$^{{-1}}$]")
    else:
        ax.set_ylabel(rf"$\Phi_0${at} [GeV$^{{-1}}$ cm$^{{-2}}$ s$^{{-1}}$]")
    if title is None:
        parts = [str(meta["seasons"])] if meta.get("seasons") else []
        if meta.get("gamma") is not None:
            parts.append(rf"$E^{{-{float(meta['gamma']):g}}}$")
        title = ", ".join(parts)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.2)
    band = f" (bands: $\\pm{n_err:g}\\sigma$)" if n_err > 0 else ""
    ax.legend(frameon=False, fontsize="small", title=band.strip() or None, title_fontsize="small")
    if path is not None:
        _save(ax.figure, path, dpi)
    return ax
