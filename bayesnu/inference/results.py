"""Posterior summaries and netCDF persistence of ArviZ DataTree results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from bayesnu.data.atomic import atomic_path


def summarize(
    dt: xr.DataTree,
    var_names: Sequence[str] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
) -> dict:
    """Per-parameter posterior summary and the divergence count.

    Parameters
    ----------
    dt
        ArviZ DataTree with ``posterior`` and ``sample_stats`` groups.
    var_names
        Scalar posterior variables to summarise (default: all scalar ones).
    quantiles
        Lower and upper quantile reported (default 5% and 95%).

    Returns
    -------
    dict
        ``{"params": {name: {"mean", "sd", "q05", "q95", "r_hat", "ess_bulk"}},
        "divergences": int, "chains": int, "draws": int}``.
    """
    post = dt["posterior"].to_dataset()
    if var_names is None:
        var_names = [n for n, v in post.data_vars.items() if set(v.dims) == {"chain", "draw"}]
    rhat = az.rhat(dt, var_names=list(var_names))
    ess = az.ess(dt, var_names=list(var_names), method="bulk")
    rhat_ds = rhat.to_dataset() if hasattr(rhat, "to_dataset") else rhat
    ess_ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
    lo_key, hi_key = f"q{round(quantiles[0] * 100):02d}", f"q{round(quantiles[1] * 100):02d}"
    out: dict[str, dict[str, float]] = {}
    for name in var_names:
        x = np.asarray(post[name].values, dtype=float).ravel()
        out[name] = {
            "mean": float(np.mean(x)),
            "sd": float(np.std(x, ddof=1)),
            lo_key: float(np.quantile(x, quantiles[0])),
            hi_key: float(np.quantile(x, quantiles[1])),
            "r_hat": float(rhat_ds[name].values),
            "ess_bulk": float(ess_ds[name].values),
        }
    div = 0
    if "sample_stats" in dt.children and "diverging" in dt["sample_stats"].data_vars:
        div = int(np.asarray(dt["sample_stats"]["diverging"].values).sum())
    return {
        "params": out,
        "divergences": div,
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
    }


def save_netcdf(dt: xr.DataTree, path: str | Path) -> Path:
    """Write a DataTree to netCDF atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".nc") as tmp:
        dt.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_netcdf(path: str | Path) -> xr.DataTree:
    """Read a DataTree written by :func:`save_netcdf` (or any ArviZ netCDF file)."""
    return az.from_netcdf(str(path))
