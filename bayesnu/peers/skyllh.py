"""Run SkyLLH's public-data point-source analysis on a release directory, side by side.

SkyLLH (``pip install skyllh``) is the reference for the point-source likelihood;
this module drives its ``time_integrated_ps.create_analysis`` with its defaults on
the same files bayesnu reads, for agreement tests and benchmarks. Nothing here is
needed by bayesnu itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def available() -> bool:
    """Whether SkyLLH can be imported."""
    try:
        import skyllh  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class SkyLLHResult:
    """SkyLLH's unblinded result for one source (and ln Lambda at given points)."""

    ts: float
    ns: float
    gamma: float
    flux_norm: float
    setup_s: float
    unblind_s: float
    log_lambda: dict[tuple[float, float], float] = field(default_factory=dict)


def unblind(
    directory: str | Path,
    seasons: Sequence[str],
    ra_deg: float,
    dec_deg: float,
    *,
    points: Sequence[tuple[float, float]] = (),
    release: str = "10y",
    seed: int = 1,
) -> SkyLLHResult:
    """Create SkyLLH's analysis for one source and unblind it.

    Parameters
    ----------
    directory
        Release directory (its parent is SkyLLH's base path, its name the sub path).
    seasons
        SkyLLH dataset names (e.g. ``["IC40"]``).
    ra_deg, dec_deg
        Source position [deg].
    points
        (ns, gamma) points at which SkyLLH's ln Lambda is also returned.
    release
        ``"10y"`` (``PublicData_10y_ps``) or ``"14y"`` (``PublicData_14y_ps_v2``).
    seed
        Seed of SkyLLH's minimiser restarts.
    """
    from skyllh.analyses.i3.publicdata_ps.time_integrated_ps import create_analysis
    from skyllh.core.config import Config
    from skyllh.core.random import RandomStateService
    from skyllh.core.source_model import PointLikeSource
    from skyllh.datasets.i3 import PublicData_10y_ps, PublicData_14y_ps_v2

    directory = Path(directory)
    cfg = Config()
    mod = PublicData_10y_ps if release == "10y" else PublicData_14y_ps_v2
    dsc = mod.create_dataset_collection(cfg, base_path=str(directory.parent), sub_path_fmt=directory.name)
    t0 = time.perf_counter()
    ana = create_analysis(
        cfg,
        datasets=[dsc[s] for s in seasons],
        source=PointLikeSource(np.radians(ra_deg), np.radians(dec_deg)),
    )
    t1 = time.perf_counter()
    ts, params, _ = ana.unblind(RandomStateService(seed))
    t2 = time.perf_counter()
    ns, gamma = float(params["ns"]), float(params["gamma"])
    scale = float(ana.calculate_fluxmodel_scaling_factor(fitparam_values=np.array([ns, gamma])))
    llh = {tuple(p): float(ana.llhratio.evaluate(np.array(p, dtype=float))[0]) for p in points}
    return SkyLLHResult(
        ts=float(ts),
        ns=ns,
        gamma=gamma,
        flux_norm=scale * ns,
        setup_s=t1 - t0,
        unblind_s=t2 - t1,
        log_lambda=llh,
    )
