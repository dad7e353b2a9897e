"""Posterior figures: corner plot (corner package) and ArviZ trace / rank plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from bayesnu.data.atomic import atomic_path


def _save(fig_or_pc, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig_or_pc.savefig(tmp, dpi=120)
    return path


def corner_plot(
    dt: xr.DataTree,
    var_names: Sequence[str],
    path: str | Path | None = None,
    *,
    truths: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    log_vars: Sequence[str] = (),
):
    """Corner plot of posterior variables, with truth markers when given.

    Parameters
    ----------
    dt
        ArviZ DataTree with a ``posterior`` group.
    var_names
        Scalar posterior variables to show.
    path
        Write the figure here (PNG/PDF by suffix) when given.
    truths
        True values (simulations) per variable.
    labels
        Axis labels per variable.
    log_vars
        Variables shown as log10 (e.g. a flux normalisation).
    """
    import corner

    post = dt["posterior"].to_dataset()
    cols, names, tr = [], [], []
    for v in var_names:
        x = np.asarray(post[v].values, dtype=float).ravel()
        t = None if truths is None else truths.get(v)
        lab = (labels or {}).get(v, v)
        if v in log_vars:
            x = np.log10(np.clip(x, 1e-300, None))
            t = None if t is None or t <= 0 else float(np.log10(t))
            lab = f"log10 {lab}"
        cols.append(x)
        names.append(lab)
        tr.append(t)
    fig = corner.corner(
        np.column_stack(cols),
        labels=names,
        truths=tr if truths else None,
        quantiles=[0.05, 0.5, 0.95],
        show_titles=True,
        title_fmt=".3g",
    )
    if path is not None:
        _save(fig, path)
    return fig


def trace_plot(dt: xr.DataTree, var_names: Sequence[str], path: str | Path | None = None):
    """ArviZ trace (marginal densities and chains) of posterior variables."""
    import arviz as az

    pc = az.plot_trace_dist(dt, var_names=list(var_names))
    if path is not None:
        _save(pc, path)
    return pc


def rank_plot(dt: xr.DataTree, var_names: Sequence[str], path: str | Path | None = None):
    """ArviZ rank plot (chain mixing diagnostic) of posterior variables."""
    import arviz as az

    pc = az.plot_rank(dt, var_names=list(var_names))
    if path is not None:
        _save(pc, path)
    return pc
