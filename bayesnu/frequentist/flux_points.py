r"""Flux points: per-bin fits of the reference model's norm, as gammapy's FluxPointsEstimator.

For each energy bin :math:`k` the caller supplies a fit statistic
:math:`C_k(\nu, \boldsymbol\theta) = -2\log L_k` (a JAX function of the norm :math:`\nu`
of the reference model restricted to that bin, of optional nuisance parameters
:math:`\boldsymbol\theta`, and of per-bin data), e.g.

* *reconstructed-energy restriction* (gammapy's convention, used for the cross-check):
  the full reference model is folded through the response and only reco bins inside
  the flux-point bin enter :math:`C_k` (:func:`bayesnu.likelihood.spectrum.reco_flux_point_data`);
* *true-energy piecewise norm* (neutrino flux points): the flux inside the true-energy
  bin is :math:`\nu` times the reference, outside it is zero or fixed, and all events
  enter :math:`C_k` (:func:`bayesnu.likelihood.spectrum.true_flux_point_data`).

:func:`estimate_flux_points` then computes, per bin, with gammapy's definitions:

* ``norm``: :math:`\hat\nu = \arg\min C_k` (nuisances fixed, or re-optimised with
  ``reoptimize=True``);
* ``norm_err``: ``n_sigma`` :math:`\times\sqrt{2\,(H^{-1})_{\nu\nu}}`, :math:`H` the
  Hessian of :math:`C_k` in the free parameters;
* ``norm_errn``, ``norm_errp``: distances from :math:`\hat\nu` to the roots of
  :math:`\tilde C_k(\nu) - C_k^{\min} = n_\sigma^2` (:math:`\tilde C_k` the profile,
  nuisances re-optimised if ``reoptimize``);
* ``norm_ul``: the upper root of :math:`\tilde C_k(\nu) - C_k^{\min} = n_{\sigma,UL}^2`;
* ``ts``: :math:`\tilde C_k(0) - C_k^{\min}`; ``sqrt_ts``: sign(:math:`\hat\nu`)
  :math:`\sqrt{ts}`;
* ``stat``, ``stat_null``, ``stat_scan``: :math:`C_k^{\min}`, :math:`\tilde C_k(0)` and
  :math:`\tilde C_k` on ``norm_scan`` (absolute, as gammapy writes them);
* ``loglike``, ``loglike_null``, ``dloglike_scan``: the GADF forms
  :math:`-C_k^{\min}/2`, :math:`-\tilde C_k(0)/2` and
  :math:`-(\tilde C_k(\nu) - \tilde C_k(0))/2` (relative to zero norm).

gammapy 2.1 reads ``loglike`` as ``stat = 2 loglike`` and ``dloglike_scan`` as
``stat_scan = 2 dloglike_scan`` (sign opposite to GADF's log-likelihood), but only when
``stat`` / ``stat_scan`` are absent; the tables written here carry both forms, so
gammapy uses its own columns and a GADF reader the GADF ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from astropy import units as u
from astropy.table import Table
from scipy import optimize, stats

from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError
from bayesnu.parallel import progress_bar

__all__ = [
    "DEFAULT_NORM_SCAN",
    "FluxPointBin",
    "FluxPointsProblem",
    "estimate_flux_points",
    "read_flux_points",
    "write_flux_points",
]

#: gammapy's default norm scan: 11 values log-spaced from 0.2 to 5.
DEFAULT_NORM_SCAN = np.geomspace(0.2, 5.0, 11)

StatFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


@dataclass(frozen=True)
class FluxPointBin:
    """One flux-point bin.

    Parameters
    ----------
    e_min_gev, e_max_gev
        The bin's energy range [GeV] (after any snapping to the data's bin edges).
    data
        The per-bin argument of the statistic (a pytree; same shapes in every bin so
        the statistic compiles once).
    counts
        Observed counts in the bin's fit range, where defined (``None`` otherwise).
    """

    e_min_gev: float
    e_max_gev: float
    data: Any
    counts: float | None = None


@dataclass(frozen=True)
class FluxPointsProblem:
    """A flux-point estimation problem.

    Parameters
    ----------
    stat
        ``stat(norm, nuisance, data) -> -2 log L`` (JAX, jit-able; ``nuisance`` has shape
        ``(n_nuisance,)``, possibly ``(0,)``).
    bins
        The flux-point bins.
    reference
        Reference spectral model with ``dnde(e_gev)``, ``integral(e1_gev, e2_gev)`` and
        ``energy_flux(e1_gev, e2_gev)`` (e.g. :class:`bayesnu.flux.PowerLaw`), in
        GeV^-1 cm^-2 s^-1.
    npred
        Optional ``npred(norm, nuisance, data)``: total predicted counts in the fit range.
    npred_signal
        Optional ``npred_signal(norm, nuisance, data)``: predicted counts of the
        flux-point component (gives ``npred_excess`` and ``ref_npred``).
    nuisance_init
        Values of the nuisance parameters (fixed unless ``reoptimize``).
    nuisance_bounds
        ``(low, high)`` per nuisance parameter for the re-optimisation.
    """

    stat: StatFn
    bins: Sequence[FluxPointBin]
    reference: Any
    npred: StatFn | None = None
    npred_signal: StatFn | None = None
    nuisance_init: Sequence[float] = ()
    nuisance_bounds: Sequence[tuple[float, float]] = field(default_factory=tuple)


class _Compiled:
    """Jitted value, gradient and Hessian of the statistic in (norm, *nuisance)."""

    def __init__(self, stat: StatFn) -> None:
        def joint(x: jax.Array, data: Any) -> jax.Array:
            return stat(x[0], x[1:], data)

        self.value_and_grad = jax.jit(jax.value_and_grad(joint))
        self.value = jax.jit(joint)
        self.hessian = jax.jit(jax.hessian(joint))


def _bounds_list(bounds: tuple[float, float]) -> tuple[float | None, float | None]:
    lo, hi = bounds
    return (None if not math.isfinite(lo) else lo, None if not math.isfinite(hi) else hi)


class _BinFitter:
    def __init__(
        self,
        comp: _Compiled,
        data: Any,
        nuis0: np.ndarray,
        nuis_bounds: Sequence[tuple[float, float]],
        norm_bounds: tuple[float, float],
        reoptimize: bool,
    ) -> None:
        self.comp, self.data = comp, data
        self.nuis0 = nuis0
        self.nuis_bounds = list(nuis_bounds) if len(nuis_bounds) else [(-math.inf, math.inf)] * nuis0.size
        self.norm_bounds = norm_bounds
        self.reopt = bool(reoptimize and nuis0.size > 0)
        self.nuis_best = nuis0.copy()

    def f(self, x: np.ndarray) -> float:
        return float(self.comp.value(jnp.asarray(x), self.data))

    def _minimize(
        self, x0: np.ndarray, free: np.ndarray, bounds: list[tuple[float, float]]
    ) -> tuple[np.ndarray, float, bool]:
        full = x0.copy()

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            full[free] = z
            v, g = self.comp.value_and_grad(jnp.asarray(full), self.data)
            return float(v), np.asarray(g)[free]

        z0 = x0[free]
        res = optimize.minimize(
            fun,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=[_bounds_list(b) for b in bounds],
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
        )
        full[free] = res.x
        ok = bool(res.success) and bool(np.isfinite(res.fun))
        # Newton polish at an interior optimum (the statistic is smooth; L-BFGS-B stops early)
        for _ in range(3):
            v, g = self.comp.value_and_grad(jnp.asarray(full), self.data)
            h = np.asarray(self.comp.hessian(jnp.asarray(full), self.data))[np.ix_(free, free)]
            g = np.asarray(g)[free]
            try:
                step = np.linalg.solve(h, g)
            except np.linalg.LinAlgError:
                break
            cand = full.copy()
            cand[free] = full[free] - step
            inside = all(
                (not math.isfinite(lo) or c >= lo) and (not math.isfinite(hi) or c <= hi)
                for c, (lo, hi) in zip(cand[free], bounds)
            )
            if not inside or not np.all(np.linalg.eigvalsh(h) > 0) or self.f(cand) > float(v):
                break
            full = cand
        return full, self.f(full), ok

    def best_fit(self, norm0: float) -> tuple[float, np.ndarray, float, bool]:
        x0 = np.concatenate([[norm0], self.nuis0])
        if self.reopt:
            free = np.arange(x0.size)
            bounds = [self.norm_bounds, *self.nuis_bounds]
        else:
            free = np.array([0])
            bounds = [self.norm_bounds]
        x, v, ok = self._minimize(x0, free, bounds)
        self.nuis_best = x[1:].copy()
        return float(x[0]), x[1:], v, ok

    def profile(self, norm: float) -> float:
        """Statistic at fixed norm, nuisances re-optimised if ``reoptimize``."""
        x0 = np.concatenate([[norm], self.nuis_best])
        if not self.reopt:
            return self.f(x0)
        free = np.arange(1, x0.size)
        _, v, _ = self._minimize(x0, free, self.nuis_bounds)
        if not np.array_equal(self.nuis_best, self.nuis0):
            # a second start at the initial values guards against a best fit on a bound
            # where the statistic is flat (e.g. a background scaled to zero)
            _, v0, _ = self._minimize(np.concatenate([[norm], self.nuis0]), free, self.nuis_bounds)
            v = min(v, v0)
        return v

    def hessian_err(self, norm: float, nuis: np.ndarray) -> float:
        x = np.concatenate([[norm], nuis])
        h = np.asarray(self.comp.hessian(jnp.asarray(x), self.data))
        idx = np.arange(x.size) if self.reopt else np.array([0])
        h = h[np.ix_(idx, idx)]
        try:
            cov = 2.0 * np.linalg.inv(h)
        except np.linalg.LinAlgError:
            return float("nan")
        return float(np.sqrt(cov[0, 0])) if cov[0, 0] > 0 else float("nan")


def _conf_root(g: Callable[[float], float], x0: float, step: float, limit: float, upper: bool) -> float:
    """Root of ``g`` (negative at ``x0``) going up or down, bracketed by doubling steps."""
    sign = 1.0 if upper else -1.0
    s = step
    prev = x0
    for _ in range(80):
        x1 = x0 + sign * s
        if (upper and x1 >= limit) or (not upper and x1 <= limit):
            x1 = limit
            if not math.isfinite(x1) or not g(x1) > 0:
                return float("nan")
            break
        if g(x1) > 0:
            break
        prev = x1
        s *= 2.0
    else:
        return float("nan")
    a, b = (prev, x1) if upper else (x1, prev)
    return float(optimize.brentq(g, a, b, xtol=1e-12 * max(1.0, abs(x1)), rtol=1e-12))


def _estimate_bin(
    comp: _Compiled,
    b: FluxPointBin,
    problem: FluxPointsProblem,
    nuis0: np.ndarray,
    norm_bounds: tuple[float, float],
    reoptimize: bool,
    n_sigma: float,
    n_sigma_ul: float,
    scan: np.ndarray,
    norm_init: float,
    npred_fn: Callable[..., Any] | None,
    npsig_fn: Callable[..., Any] | None,
) -> dict[str, Any]:
    """All quantities of one flux-point bin (see the module docstring)."""
    lo_b, hi_b = norm_bounds
    fitter = _BinFitter(comp, b.data, nuis0, problem.nuisance_bounds, norm_bounds, reoptimize)
    norm, nuis, stat_min, ok = fitter.best_fit(float(np.clip(norm_init, lo_b, hi_b)))
    err = fitter.hessian_err(norm, nuis)
    ok = ok and math.isfinite(stat_min)
    stat_null = fitter.profile(0.0) if lo_b <= 0.0 <= hi_b else float("nan")
    ts = stat_null - stat_min
    step = err if math.isfinite(err) and err > 0 else max(abs(norm), 1.0) * 0.1
    big = 1e5 * max(abs(norm), step)
    up_lim = hi_b if math.isfinite(hi_b) else norm + big
    dn_lim = lo_b if math.isfinite(lo_b) else norm - big

    def g1(x: float) -> float:
        return fitter.profile(x) - stat_min - n_sigma**2

    def gul(x: float) -> float:
        return fitter.profile(x) - stat_min - n_sigma_ul**2

    r_up = _conf_root(g1, norm, step, up_lim, True)
    r_dn = _conf_root(g1, norm, step, dn_lim, False)
    r_ul = _conf_root(gul, norm, step, up_lim, True)
    stat_scan = np.array([fitter.profile(float(v)) for v in scan])
    with np.errstate(invalid="ignore"):
        sqrt_ts = float(np.sign(norm) * np.sqrt(max(ts, 0.0))) if math.isfinite(ts) else float("nan")
    row: dict[str, Any] = {
        "e_min": b.e_min_gev,
        "e_max": b.e_max_gev,
        "norm": norm,
        "norm_err": n_sigma * err,
        "norm_errn": norm - r_dn,
        "norm_errp": r_up - norm,
        "norm_ul": r_ul,
        "ts": ts,
        "sqrt_ts": sqrt_ts,
        "stat": stat_min,
        "stat_null": stat_null,
        "stat_scan": stat_scan,
        "success": ok,
        "counts": np.nan if b.counts is None else float(b.counts),
        "nuisance": nuis.copy(),
    }
    x_best = jnp.asarray(norm), jnp.asarray(nuis)
    row["npred"] = float(npred_fn(*x_best, b.data)) if npred_fn is not None else np.nan
    if npsig_fn is not None:
        row["npred_excess"] = float(npsig_fn(*x_best, b.data))
        row["ref_npred"] = float(npsig_fn(jnp.asarray(1.0), jnp.asarray(nuis), b.data))
    return row


def estimate_flux_points(
    problem: FluxPointsProblem,
    *,
    reoptimize: bool = False,
    n_sigma: float = 1.0,
    n_sigma_ul: float = 2.0,
    norm_scan: np.ndarray | None = None,
    norm_bounds: tuple[float, float] = (-math.inf, math.inf),
    norm_init: float = 1.0,
    sqrt_ts_threshold_ul: float = 2.0,
    progress: bool | None = None,
) -> Table:
    """Estimate flux points; returns a GADF / gammapy ``likelihood`` SED table.

    Parameters
    ----------
    problem
        Statistic, bins and reference model (:class:`FluxPointsProblem`).
    reoptimize
        Re-fit the nuisance parameters in every bin and along every profile (gammapy's
        ``reoptimize=True``); otherwise they stay at ``nuisance_init``.
    n_sigma
        Errors ``norm_errn/errp`` at :math:`\\Delta C = n_\\sigma^2`; ``norm_err`` is
        scaled by it (gammapy's definition).
    n_sigma_ul
        Upper limit at :math:`\\Delta C = n_{\\sigma,UL}^2` above the best fit (gammapy's
        convention; written as ``UL_CONF = 1 - 2 * norm.sf(n_sigma_ul)``, 0.9545 for 2).
    norm_scan
        Norm values of the likelihood scan (default :data:`DEFAULT_NORM_SCAN`).
    norm_bounds
        Allowed norm range (gammapy's default: unbounded, negative norms allowed).
    norm_init
        Start value of the fit (1: the reference model).
    sqrt_ts_threshold_ul
        Rows with ``sqrt_ts`` below this are flagged ``is_ul`` (gammapy's default 2).
    progress
        Progress bar over bins.
    """
    if n_sigma <= 0 or n_sigma_ul <= 0:
        raise ConfigError("n_sigma and n_sigma_ul must be positive")
    if not problem.bins:
        raise ConfigError("no flux-point bins")
    scan = np.asarray(DEFAULT_NORM_SCAN if norm_scan is None else norm_scan, dtype=float)
    nuis0 = np.asarray(problem.nuisance_init, dtype=float).ravel()
    if len(problem.nuisance_bounds) not in (0, nuis0.size):
        raise ConfigError("nuisance_bounds needs one (low, high) pair per nuisance parameter")
    comp = _Compiled(problem.stat)
    npred_fn = jax.jit(problem.npred) if problem.npred is not None else None
    npsig_fn = jax.jit(problem.npred_signal) if problem.npred_signal is not None else None
    rows: list[dict[str, Any]] = []
    with progress_bar(len(problem.bins), "flux points", enabled=progress, unit="bin") as bar:
        for b in problem.bins:
            if not b.e_max_gev > b.e_min_gev > 0:
                raise ConfigError(
                    f"flux-point bin [{b.e_min_gev}, {b.e_max_gev}] GeV is not a positive range"
                )
            rows.append(
                _estimate_bin(
                    comp,
                    b,
                    problem,
                    nuis0,
                    norm_bounds,
                    reoptimize,
                    n_sigma,
                    n_sigma_ul,
                    scan,
                    norm_init,
                    npred_fn,
                    npsig_fn,
                )
            )
            bar.update(1)
    return _build_table(rows, problem, scan, n_sigma, n_sigma_ul, sqrt_ts_threshold_ul, reoptimize)


def _build_table(
    rows: list[dict[str, Any]],
    problem: FluxPointsProblem,
    scan: np.ndarray,
    n_sigma: float,
    n_sigma_ul: float,
    sqrt_ts_threshold_ul: float,
    reoptimize: bool,
) -> Table:
    ref = problem.reference
    col = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    e_min, e_max = col("e_min"), col("e_max")
    e_ref = np.sqrt(e_min * e_max)
    ref_dnde = np.asarray(ref.dnde(e_ref), dtype=float)
    ref_flux = np.asarray(ref.integral(e_min, e_max), dtype=float)
    ref_eflux = np.array([float(ref.energy_flux(a, b)) for a, b in zip(e_min, e_max)])
    dnde_u, e2_u = u.Unit("GeV-1 cm-2 s-1"), u.Unit("GeV cm-2 s-1")
    t = Table()
    t["e_ref"] = e_ref * u.GeV
    t["e_min"] = e_min * u.GeV
    t["e_max"] = e_max * u.GeV
    t["ref_dnde"] = ref_dnde * dnde_u
    t["ref_flux"] = ref_flux * u.Unit("cm-2 s-1")
    t["ref_eflux"] = ref_eflux * e2_u
    t["ref_e2dnde"] = e_ref**2 * ref_dnde * e2_u
    if "ref_npred" in rows[0]:
        t["ref_npred"] = col("ref_npred")
    for k in ("norm", "norm_err", "norm_errn", "norm_errp", "norm_ul", "ts", "sqrt_ts"):
        t[k] = col(k)
    # per-dataset quantities: shape (n_bins, 1), gammapy's "dataset" axis of length 1
    if problem.npred is not None:
        t["npred"] = col("npred")[:, None]
    if "npred_excess" in rows[0]:
        t["npred_excess"] = col("npred_excess")[:, None]
    if any(r["counts"] == r["counts"] for r in rows):  # counts defined for some bin
        t["counts"] = col("counts")[:, None]
    t["success"] = np.array([r["success"] for r in rows], dtype=bool)
    t["is_ul"] = t["sqrt_ts"] < sqrt_ts_threshold_ul
    t["stat"] = col("stat")
    t["stat_null"] = col("stat_null")
    t["norm_scan"] = np.tile(scan, (len(rows), 1))
    t["stat_scan"] = np.stack([r["stat_scan"] for r in rows])
    # GADF likelihood-SED forms (log-likelihoods; the scan relative to zero norm)
    t["loglike"] = -0.5 * t["stat"]
    t["loglike_null"] = -0.5 * t["stat_null"]
    t["dloglike_scan"] = -0.5 * (t["stat_scan"] - t["stat_null"][:, None])
    for rep, refcol, unit in (("dnde", ref_dnde, dnde_u), ("e2dnde", e_ref**2 * ref_dnde, e2_u)):
        t[rep] = t["norm"] * refcol * unit
        for suffix in ("err", "errn", "errp", "ul"):
            t[f"{rep}_{suffix}"] = t[f"norm_{suffix}"] * refcol * unit
    if problem.nuisance_init is not None and len(problem.nuisance_init):
        t["nuisance"] = np.stack([r["nuisance"] for r in rows])
    t.meta["SED_TYPE"] = "likelihood"
    t.meta["UL_CONF"] = float(np.round(1 - 2 * stats.norm.sf(n_sigma_ul), 7))
    t.meta["n_sigma"] = float(n_sigma)
    t.meta["n_sigma_ul"] = float(n_sigma_ul)
    t.meta["sqrt_ts_threshold_ul"] = float(sqrt_ts_threshold_ul)
    t.meta["sed_type_init"] = "likelihood"
    t.meta["REOPTIM"] = bool(reoptimize)
    # the reference model, when it is a bayesnu PowerLaw: E0 [GeV], index, cut-off [GeV]
    for key, attr in (("REF_E0", "e0_gev"), ("REF_IDX", "gamma"), ("REF_ECUT", "e_cut_gev")):
        val = getattr(ref, attr, None)
        if val is not None:
            t.meta[key] = float(val)
    t.meta["CREATOR"] = "bayesnu.frequentist.flux_points"
    return t


#: FITS header keywords gammapy uses for the lower-case metadata (FLUX_METADATA_FITS_KEYS).
_FITS_KEYS = {
    "n_sigma": "N_SIGMA",
    "n_sigma_ul": "NSIGMAUL",
    "sqrt_ts_threshold_ul": "STSTHUL",
    "sed_type_init": "SEDTYPEI",
}


def write_flux_points(table: Table, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write a flux-point table atomically as ECSV (``.ecsv``) or FITS (``.fits``, ``.fits.gz``).

    The FITS file has a primary HDU and a ``FLUXPOINTS`` table HDU (gammapy's layout);
    lower-case metadata become gammapy's FITS keywords (``N_SIGMA``, ``NSIGMAUL``,
    ``STSTHUL``, ``SEDTYPEI``).
    """
    from astropy.io import fits

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True)")
    name = path.name.lower()
    if name.endswith(".ecsv"):
        with atomic_path(path, suffix=".ecsv") as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        return path
    if name.endswith((".fits", ".fits.gz", ".fit")):
        t = table.copy(copy_data=False)
        meta = dict(t.meta)
        t.meta.clear()
        for k, v in meta.items():
            t.meta[_FITS_KEYS.get(k, k).upper()] = v
        hdu = fits.BinTableHDU(t, name="FLUXPOINTS")
        suffix = ".fits.gz" if name.endswith(".gz") else ".fits"
        with atomic_path(path, suffix=suffix) as tmp:
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
        return path
    raise ConfigError(f"unknown flux-point file type {path.name!r}: use .ecsv or .fits")


def read_flux_points(path: str | Path) -> Table:
    """Read a flux-point table written by :func:`write_flux_points` (ECSV or FITS)."""
    path = Path(path)
    if path.name.lower().endswith(".ecsv"):
        return Table.read(path, format="ascii.ecsv")
    return Table.read(path, hdu="FLUXPOINTS")
