r"""Frequentist products of the diffuse fit: profile scans, Wilks regions, astro TS, flux points.

All use the same ``-LLH`` as the fit (:func:`~bayesnu.analyses.diffuse.model.log_density`,
the release's convention: minus log-likelihood minus log-prior).

Profile likelihood
    :math:`\lambda(\gamma, \Phi) = -\ln L(\gamma, \Phi, \hat{\hat\nu}) + \ln L(\hat\gamma,
    \hat\Phi, \hat\nu)` with the nuisance parameters :math:`\nu` re-optimised at every
    point (warm-started from a neighbouring point).
Wilks regions
    With :math:`d` profiled parameters, the region of confidence :math:`p` is
    :math:`\lambda \le \tfrac12 F^{-1}_{\chi^2_d}(p)`: 0.5 (68.27%) and 2.0 (95.45%)
    for :math:`d=1`; 1.148 (68.27%) and 3.090 (95.45%) for :math:`d=2`.
Astrophysical test statistic
    :math:`TS = 2\,[\min_{\Phi=0}(-\ln L) - \min(-\ln L)]`.
Flux points
    The astrophysical flux is replaced by :math:`\Phi_j (E/E_j)^{-\gamma_\mathrm{pw}}` in
    true-energy bins :math:`j` (geometric centre :math:`E_j`), every :math:`\Phi_j`
    and nuisance fitted together; per bin the best fit, profile-likelihood errors
    (:math:`\lambda = 0.5` crossings), the 95% upper limit (one-sided,
    :math:`\lambda = 1.353`), :math:`TS_j` and the profile scan in :math:`\Phi_j` are
    returned as arrays for the shared flux-point table writer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis
from bayesnu.analyses.diffuse.model import DiffuseInputs, log_density
from bayesnu.errors import DataFormatError
from bayesnu.inference import ParamSpec, maximize


def wilks_threshold(confidence: float, dof: int) -> float:
    """:math:`\\tfrac12 F^{-1}_{\\chi^2_{dof}}(confidence)` (a ``-LLH`` difference)."""
    return 0.5 * float(stats.chi2.ppf(confidence, dof))


#: Gaussian 1- and 2-sigma probabilities.
SIGMA_LEVELS: tuple[float, float] = (
    float(stats.norm.cdf(1) - stats.norm.cdf(-1)),
    float(stats.norm.cdf(2) - stats.norm.cdf(-2)),
)


@dataclass(frozen=True)
class ProfileScan:
    """A 2D profile of ``-LLH`` over (astro_gamma, astro_norm).

    Attributes
    ----------
    gamma, norm
        Grid axes (astro_gamma, astro_norm in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, six-neutrino).
    neg_llh
        ``(len(gamma), len(norm))`` profiled ``-LLH``.
    nuisance
        Best nuisance values per grid point (empty for a loaded table).
    best
        Global best fit ``(gamma, norm, -LLH)`` if known (else the refined table minimum).
    source
        Where the numbers came from.
    """

    gamma: np.ndarray
    norm: np.ndarray
    neg_llh: np.ndarray
    nuisance: dict[str, np.ndarray] = field(default_factory=dict)
    best: tuple[float, float, float] | None = None
    source: str = ""

    def grid_minimum(self) -> tuple[float, float, float]:
        """Smallest tabulated point ``(gamma, norm, -LLH)``."""
        i, j = np.unravel_index(np.argmin(self.neg_llh), self.neg_llh.shape)
        return float(self.gamma[i]), float(self.norm[j]), float(self.neg_llh[i, j])

    def refined_minimum(self, half_width: int = 1) -> tuple[float, float, float]:
        """Minimum of a quadratic surface fitted to the grid points around the grid minimum."""
        i, j = np.unravel_index(np.argmin(self.neg_llh), self.neg_llh.shape)
        i0, i1 = max(i - half_width, 0), min(i + half_width + 1, len(self.gamma))
        j0, j1 = max(j - half_width, 0), min(j + half_width + 1, len(self.norm))
        g, n = np.meshgrid(self.gamma[i0:i1], self.norm[j0:j1], indexing="ij")
        y = self.neg_llh[i0:i1, j0:j1].ravel()
        x1, x2 = g.ravel(), n.ravel()
        a = np.column_stack([np.ones_like(x1), x1, x2, x1**2, x1 * x2, x2**2])
        c = np.linalg.lstsq(a, y, rcond=None)[0]
        h = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
        xm = np.linalg.solve(h, -c[1:3])
        val = (
            c[0] + c[1] * xm[0] + c[2] * xm[1] + c[3] * xm[0] ** 2 + c[4] * xm[0] * xm[1] + c[5] * xm[1] ** 2
        )
        return float(xm[0]), float(xm[1]), float(val)

    def minimum(self) -> tuple[float, float, float]:
        """The best fit: ``best`` if given, else :meth:`refined_minimum`."""
        return self.best if self.best is not None else self.refined_minimum()

    def delta(self) -> np.ndarray:
        """``-LLH`` minus the minimum (the profile-likelihood ratio :math:`\\lambda`)."""
        return self.neg_llh - min(self.minimum()[2], float(np.min(self.neg_llh)))

    def profile_1d(self, parameter: str) -> tuple[np.ndarray, np.ndarray]:
        """1D profile of ``parameter`` (``astro_gamma`` or ``astro_norm``): the other profiled out.

        The minimum over the other axis is refined per row by a parabola through the
        three lowest grid points.
        """
        d = self.delta()
        axis = 1 if parameter == "astro_gamma" else 0
        other = self.norm if axis == 1 else self.gamma
        x = self.gamma if axis == 1 else self.norm
        rows = d if axis == 1 else d.T
        prof = np.array([_parabola_min(other, r) for r in rows])
        return x, prof

    def wilks_interval(
        self, parameter: str, confidence: float = SIGMA_LEVELS[0]
    ) -> tuple[float, float, float]:
        """(best, low, high) of the 1D Wilks interval of ``parameter`` (NaN if not crossed)."""
        x, prof = self.profile_1d(parameter)
        level = wilks_threshold(confidence, 1)
        k = int(np.argmin(prof))
        best = self.minimum()[0 if parameter == "astro_gamma" else 1]
        lo = _crossing(x[: k + 1][::-1], prof[: k + 1][::-1], level)
        hi = _crossing(x[k:], prof[k:], level)
        return best, lo, hi

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {
            "gamma": self.gamma.tolist(),
            "norm": self.norm.tolist(),
            "neg_llh": self.neg_llh.tolist(),
            "best": self.best,
            "source": self.source,
            "nuisance": {k: v.tolist() for k, v in self.nuisance.items()},
        }


def _parabola_min(x: np.ndarray, y: np.ndarray) -> float:
    k = int(np.argmin(y))
    if k == 0 or k == len(y) - 1:
        return float(y[k])
    x0, x1, x2 = x[k - 1 : k + 2]
    y0, y1, y2 = y[k - 1 : k + 2]
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
    c = y1 - a * x1**2 - b * x1
    if a <= 0:
        return float(y1)
    return float(min(c - b * b / (4 * a), y1))


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First ``x`` where the (monotone-ish) profile ``y`` reaches ``level`` (linear interpolation)."""
    above = np.flatnonzero(y >= level)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


def load_published_scan(path: str | Path) -> ProfileScan:
    """Read the release's ``astro_scan_data.txt`` (astro_gamma, astro_norm, -LLH per line).

    Raises
    ------
    DataFormatError
        A line without three numbers, or points that do not form a full grid.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError("scan table not found", path=path, fix="check the path")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) != 3:
            raise DataFormatError(
                f"{len(parts)} fields, expected 3 (astro_gamma astro_norm -LLH)",
                path=path,
                line=lineno,
                fix="one grid point per line",
            )
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise DataFormatError(
                f"non-numeric field in {s!r}", path=path, line=lineno, fix="all fields are numbers"
            ) from None
        if not all(math.isfinite(v) for v in vals):
            raise DataFormatError("non-finite value", path=path, line=lineno, fix="replace NaN/inf")
        rows.append(vals)
    arr = np.array(rows)
    gamma, norm = np.unique(arr[:, 0]), np.unique(arr[:, 1])
    if gamma.size * norm.size != arr.shape[0]:
        raise DataFormatError(
            f"{arr.shape[0]} points do not form a {gamma.size} x {norm.size} grid",
            path=path,
            fix="the scan must cover every (gamma, norm) pair once",
        )
    table = np.full((gamma.size, norm.size), np.nan)
    table[np.searchsorted(gamma, arr[:, 0]), np.searchsorted(norm, arr[:, 1])] = arr[:, 2]
    if np.isnan(table).any():
        raise DataFormatError("duplicate grid points", path=path, fix="each (gamma, norm) pair once")
    return ProfileScan(gamma, norm, table, source=str(path))


def profile_scan(
    analysis: DiffuseAnalysis,
    gamma: Sequence[float],
    norm: Sequence[float],
    progress: bool | None = None,
) -> ProfileScan:
    """Profile ``-LLH`` over a (astro_gamma, astro_norm) grid, nuisances re-optimised at each point.

    Points are visited in a snake order and every fit starts from the previous point's
    nuisance values (one compiled function for the whole scan).
    """
    from tqdm.auto import tqdm

    gamma = np.asarray(gamma, dtype=float)
    norm = np.asarray(norm, dtype=float)
    best = analysis.fit(compute_errors=False)
    nuis = [n for n in best.free if n not in ("astro_gamma", "astro_norm")]
    table = np.full((gamma.size, norm.size), np.nan)
    nuis_tab = {n: np.full_like(table, np.nan) for n in nuis}
    start = {n: best.params[n] for n in nuis}
    order = [(i, j if i % 2 == 0 else norm.size - 1 - j) for i in range(gamma.size) for j in range(norm.size)]
    bar = tqdm(order, desc="profile scan", disable=(not _isatty()) if progress is None else not progress)
    row_start = dict(start)
    for i, j in bar:
        if j == (0 if i % 2 == 0 else norm.size - 1):
            start = dict(row_start)
        fx = {"astro_gamma": gamma[i], "astro_norm": norm[j]}
        fit = analysis.fit(fixed=fx, starts=[start], compute_errors=False, split_epsilon_dom=True)
        table[i, j] = fit.neg_llh
        for n in nuis:
            nuis_tab[n][i, j] = fit.params[n]
        start = {n: fit.params[n] for n in nuis}
        if j == (norm.size - 1 if i % 2 == 0 else 0):
            row_start = dict(start)
    return ProfileScan(
        gamma,
        norm,
        table,
        nuis_tab,
        best=(best.params["astro_gamma"], best.params["astro_norm"], best.neg_llh),
        source="bayesnu profile scan",
    )


def _isatty() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def astro_ts(analysis: DiffuseAnalysis) -> dict[str, float]:
    """Test statistic of the astrophysical component, :math:`2[\\min_{\\Phi=0} - \\min]` of ``-LLH``.

    With ``astro_norm = 0`` the index is undefined; it is fixed at its best-fit value.
    """
    best = analysis.fit(compute_errors=False)
    null = analysis.fit(
        fixed={"astro_norm": 0.0, "astro_gamma": best.params["astro_gamma"]}, compute_errors=False
    )
    ts = 2.0 * (null.neg_llh - best.neg_llh)
    return {
        "ts": ts,
        "neg_llh_best": best.neg_llh,
        "neg_llh_null": null.neg_llh,
        "sqrt_ts": math.sqrt(max(ts, 0.0)),
    }


# ----------------------------------------------------------------------------- flux points
def _piecewise_log_density(
    theta: dict, inputs: DiffuseInputs, segment: jax.Array, log_e_rel: jax.Array, gamma_pw: jax.Array
) -> jax.Array:
    """Log-density with the astro flux replaced by per-segment normalisations ``piece_j``.

    ``segment[i]`` is the true-energy bin of event ``i`` (-1 outside: no astro flux),
    ``log_e_rel[i] = ln(E_i / E_j)``.
    """
    n_pieces = sum(1 for k in theta if k.startswith("piece_"))
    norms = jnp.stack([theta[f"piece_{j}"] for j in range(n_pieces)])
    eff = jnp.where(segment >= 0, norms[jnp.clip(segment, 0, n_pieces - 1)], 0.0)
    # astro_gamma = 0 and astro_norm = 1 leave astro_base as the whole astrophysical weight
    shape = jnp.exp(-gamma_pw * log_e_rel)
    theta = dict(theta)
    theta["astro_gamma"] = jnp.asarray(0.0)
    theta["astro_norm"] = jnp.asarray(1.0)
    base = replace(inputs, astro_base=inputs.astro_base * eff * shape)
    rest = {k: v for k, v in theta.items() if not k.startswith("piece_")}
    return log_density(rest, base)


@dataclass(frozen=True)
class FluxPoints:
    """Piecewise astrophysical normalisations in true-energy bins.

    ``norm`` is the six-neutrino flux at ``e_ref_gev`` in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1
    (like ``astro_norm``); ``e2dnde`` the per-flavour (nu + nubar) :math:`E^2\\,dN/dE`
    [GeV cm^-2 s^-1 sr^-1] at ``e_ref_gev``. ``norm_scan`` / ``neg_llh_scan`` hold the
    profile of each bin (rows) in its normalisation.
    """

    e_min_gev: np.ndarray
    e_max_gev: np.ndarray
    e_ref_gev: np.ndarray
    norm: np.ndarray
    norm_errn: np.ndarray
    norm_errp: np.ndarray
    norm_ul: np.ndarray
    ts: np.ndarray
    norm_scan: np.ndarray
    neg_llh_scan: np.ndarray
    gamma_pw: float
    ul_confidence: float = 0.95

    @property
    def e2dnde(self) -> np.ndarray:
        """Per-flavour :math:`E^2 dN/dE` at ``e_ref_gev`` [GeV cm^-2 s^-1 sr^-1]."""
        return self.norm * 1e-18 / 3.0 * self.e_ref_gev**2

    def to_dict(self) -> dict:
        """Arrays as lists (for JSON and the flux-point table writer)."""
        d = {k: np.asarray(v).tolist() for k, v in self.__dict__.items()}
        d["e2dnde_per_flavour_gev_cm2_s_sr"] = self.e2dnde.tolist()
        return d


def flux_points(
    analysis: DiffuseAnalysis,
    edges_gev: Sequence[float],
    gamma_pw: float = 2.0,
    n_scan: int = 15,
    ul_confidence: float = 0.95,
    progress: bool | None = None,
) -> FluxPoints:
    """Differential flux points: piecewise astro normalisations, other parameters re-optimised.

    Parameters
    ----------
    analysis
        The analysis (its fixed parameters and priors apply).
    edges_gev
        True-energy bin edges [GeV]; events outside get no astrophysical flux.
    gamma_pw
        Spectral index inside each bin.
    n_scan
        Points of each bin's normalisation scan (0 .. about 4 sigma above the best fit).
    ul_confidence
        Confidence of the one-sided upper limits (profile-likelihood, Wilks).
    """
    from tqdm.auto import tqdm

    edges = np.asarray(edges_gev, dtype=float)
    e_ref = np.sqrt(edges[:-1] * edges[1:])
    nb = e_ref.size
    energy = np.asarray(analysis.mc_fields["primaryEnergy"], dtype=float)
    seg = np.digitize(energy, edges) - 1
    seg[(seg < 0) | (seg >= nb)] = -1
    log_e_rel = np.log(energy / e_ref[np.clip(seg, 0, nb - 1)])
    args = (analysis.inputs, jnp.asarray(seg), jnp.asarray(log_e_rel), jnp.asarray(gamma_pw))
    specs = [s for s in analysis.parameter_specs() if s.name not in ("astro_gamma", "astro_norm")]
    specs += [ParamSpec(f"piece_{j}", 1.0, 0.0, math.inf) for j in range(nb)]
    fixed = {k: v for k, v in analysis.fixed.items()}
    glob = maximize(_piecewise_log_density, specs, args=args, fixed=fixed, compute_cov=False)
    best_norm = np.array([glob.params[f"piece_{j}"] for j in range(nb)])
    best_val = -glob.logp
    ul_level = 0.5 * float(stats.chi2.ppf(2 * ul_confidence - 1, 1))
    norm_scan = np.zeros((nb, n_scan))
    llh_scan = np.zeros((nb, n_scan))
    ts = np.zeros(nb)
    errn, errp, ul = (np.full(nb, np.nan) for _ in range(3))
    bar = tqdm(range(nb), desc="flux points", disable=(not _isatty()) if progress is None else not progress)
    for j in bar:
        name = f"piece_{j}"
        start = {k: v for k, v in glob.params.items() if k not in fixed and k != name}

        def prof(value: float, start=start, name=name) -> float:
            fx = {**fixed, name: value}
            r = maximize(
                _piecewise_log_density, specs, args=args, fixed=fx, starts=[start], compute_cov=False
            )
            return -r.logp

        null = prof(0.0)
        ts[j] = 2.0 * (null - best_val)
        # step from the curvature-free guess: scan up to where the profile exceeds the UL level
        hi = max(best_norm[j] * 3.0, 2.0 * (best_norm[j] + 1.0))
        grid = np.linspace(0.0, hi, n_scan)
        vals = np.array([null if v == 0.0 else prof(float(v)) for v in grid])
        while vals[-1] - best_val < ul_level + 0.5 and hi < 1e4:
            hi *= 2.0
            grid = np.linspace(0.0, hi, n_scan)
            vals = np.array([null if v == 0.0 else prof(float(v)) for v in grid])
        norm_scan[j], llh_scan[j] = grid, vals
        d = vals - best_val
        above = grid >= best_norm[j]
        ul[j] = _crossing(grid[above], d[above], ul_level) if above.any() else math.nan
        lo_x, lo_d = np.append(grid[~above], best_norm[j])[::-1], np.append(d[~above], 0.0)[::-1]
        lo = _crossing(lo_x, lo_d, 0.5) if lo_x.size > 1 else math.nan
        up = _crossing(np.insert(grid[above], 0, best_norm[j]), np.insert(d[above], 0, 0.0), 0.5)
        errn[j] = best_norm[j] - lo if math.isfinite(lo) else best_norm[j]
        errp[j] = up - best_norm[j]
    return FluxPoints(
        edges[:-1],
        edges[1:],
        e_ref,
        best_norm,
        errn,
        errp,
        ul,
        ts,
        norm_scan,
        llh_scan,
        float(gamma_pw),
        ul_confidence,
    )


def astro_norm_to_per_flavour(norm: float | np.ndarray) -> float | np.ndarray:
    """Six-neutrino ``astro_norm`` -> per-flavour (nu + nubar) flux at 100 TeV (same unit)."""
    return np.asarray(norm) / 3.0 if isinstance(norm, np.ndarray) else norm / 3.0
