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
    and nuisance fitted together; per bin the shared engine
    :func:`bayesnu.frequentist.flux_points.estimate_flux_points` gives the best fit,
    profile-likelihood errors (:math:`\lambda = 0.5` crossings), the 95% upper limit
    (one-sided, :math:`\lambda = 1.353`), :math:`TS_j` and the profile scan in
    :math:`\Phi_j`, as a gammapy / GADF likelihood SED table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from astropy import units as u
from astropy.table import Table
from scipy import stats
from threadpoolctl import threadpool_limits

from bayesnu.analyses.diffuse.analysis import DiffuseAnalysis
from bayesnu.analyses.diffuse.model import (
    ASTRO_PIVOT_GEV,
    ASTRO_UNIT_PER_FLAVOUR,
    DiffuseInputs,
    component_weights,
    event_weights,
    log_density,
)
from bayesnu.analyses.diffuse.params import DETECTOR_NOMINAL, Prior
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.inference import ParamSpec, maximize
from bayesnu.inference.map import negative_log_density
from bayesnu.likelihood.binned import bin_sums


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
    method: str = "auto",
) -> ProfileScan:
    """Profile ``-LLH`` over a (astro_gamma, astro_norm) grid, nuisances re-optimised at each point.

    Parameters
    ----------
    analysis
        The analysis (its free parameters other than astro_gamma and astro_norm are
        the nuisances).
    gamma, norm
        Grid axes (astro_gamma; astro_norm in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, six-neutrino).
    progress
        Progress bar (default: only on a terminal).
    method
        ``"newton"``: the points of one astro_gamma row are fitted inside one
        executable by a box-constrained Newton iteration
        (:func:`bayesnu.inference.newton.box_newton`), each starting from the previous
        row's solution and BFGS Hessian at the same astro_norm (exact Hessians on the
        first row and for rows where BFGS stalls); points it does not converge on are
        re-fitted with L-BFGS-B. ``"lbfgsb"``: every point by the release-style
        L-BFGS-B fit, in a snake order from the previous point. Where ``epsilon_dom``
        is free both methods fit its two ranges split at 0.99 and keep the better.
        ``"auto"`` (default): ``"newton"`` when the detector parameters are fixed;
        ``"lbfgsb"`` when they are free (on that multi-modal surface the row-wise warm
        starts of ``"newton"`` can settle in a worse local minimum: up to 0.39 in
        ``-LLH`` at one of 60 points in a test, where the snake-ordered L-BFGS-B found
        the lower one).
    """
    if method not in ("auto", "newton", "lbfgsb"):
        raise ConfigError(f"method must be 'auto', 'newton' or 'lbfgsb', not {method!r}")
    if method == "auto":
        detector_free = any(n in analysis.free_parameters for n in DETECTOR_NOMINAL)
        method = "lbfgsb" if detector_free else "newton"
    from tqdm.auto import tqdm

    gamma = np.asarray(gamma, dtype=float)
    norm = np.asarray(norm, dtype=float)
    best = analysis.fit(compute_errors=False)
    nuis = [n for n in best.free if n not in ("astro_gamma", "astro_norm")]
    table = np.full((gamma.size, norm.size), np.nan)
    nuis_tab = {n: np.full_like(table, np.nan) for n in nuis}
    disable = (not _isatty()) if progress is None else not progress
    if method == "newton":
        _newton_scan(analysis, best, nuis, gamma, norm, table, nuis_tab, disable)
    else:
        start = {n: best.params[n] for n in nuis}
        order = [
            (i, j if i % 2 == 0 else norm.size - 1 - j) for i in range(gamma.size) for j in range(norm.size)
        ]
        row_start = dict(start)
        for i, j in tqdm(order, desc="profile scan", disable=disable):
            if j == (0 if i % 2 == 0 else norm.size - 1):
                start = dict(row_start)
            fit = _point_fit(analysis, gamma[i], norm[j], start)
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


def _point_fit(analysis: DiffuseAnalysis, g: float, n: float, start: dict):
    fx = {"astro_gamma": float(g), "astro_norm": float(n)}
    return analysis.fit(
        fixed=fx, starts=[start], compute_errors=False, split_epsilon_dom=True, method="lbfgsb"
    )


_ROW_SOLVERS: dict[tuple, object] = {}


def _row_solver(nuis: tuple, fixed: tuple, quasi: bool):
    """Jitted fit of the nuisances ``nuis`` at each point of one scan row.

    ``fixed`` names the point's (astro_gamma, astro_norm) followed by the other held
    parameters. ``quasi=False``: exact-Hessian Newton; ``quasi=True``: BFGS from a Hessian
    per point.
    """
    key = (nuis, fixed, quasi)
    if key not in _ROW_SOLVERS:
        from bayesnu.inference.newton import box_newton

        negll = negative_log_density(log_density, nuis, fixed)

        def solve(x0, h0, point, lower, upper, base, inputs):
            xfixed = jnp.concatenate([point, base])
            return box_newton(negll, x0, lower, upper, (xfixed, (inputs,)), hessian0=h0 if quasi else None,
                              max_iter=40)  # fmt: skip

        def row(x0, h0, points, lower, upper, base, inputs):
            # points one after the other inside one executable: vmap-ing them multiplies the
            # per-event intermediates by the row length and runs out of cache
            return jax.lax.map(lambda a: solve(*a, lower, upper, base, inputs), (x0, h0, points))

        _ROW_SOLVERS[key] = jax.jit(row)
    return _ROW_SOLVERS[key]


def _take_where(mask: np.ndarray, a, b):
    """Per point (leading axis): fields of ``a`` where ``mask``, else of ``b``."""
    return jax.tree.map(lambda u, v: np.where(mask.reshape((-1,) + (1,) * (np.ndim(u) - 1)), u, v), a, b)


def _newton_scan(analysis, best, nuis, gamma, norm, table, nuis_tab, disable) -> None:
    """Row-by-row batched Newton scan (see :func:`profile_scan`); fills ``table`` and ``nuis_tab``."""
    from tqdm.auto import tqdm

    rest = tuple(n for n in best.params if n not in nuis and n not in ("astro_gamma", "astro_norm"))
    fixed = ("astro_gamma", "astro_norm", *rest)
    exact, quasi = _row_solver(tuple(nuis), fixed, False), _row_solver(tuple(nuis), fixed, True)
    base = jnp.asarray([best.params[n] for n in rest], dtype=jnp.float64)
    boxes = []
    for b in analysis.epsilon_dom_ranges(fixed):
        specs = {s.name: s for s in analysis.parameter_specs(b)}
        boxes.append(
            tuple(np.array([getattr(specs[n], a) for n in nuis], dtype=float) for a in ("lower", "upper"))
        )
    m, p = norm.size, len(nuis)
    x_prev = [np.clip(np.tile([best.params[n] for n in nuis], (m, 1)), lo, hi) for lo, hi in boxes]
    h_prev: list[np.ndarray | None] = [None for _ in boxes]
    for i in tqdm(range(gamma.size), desc="profile scan", disable=disable, unit="row"):
        points = jnp.asarray(np.column_stack([np.full(m, gamma[i]), norm]))
        vals, xs, oks = [], [], []
        for b, (lo, hi) in enumerate(boxes):
            rest_args = (points, jnp.asarray(lo), jnp.asarray(hi), base, analysis.inputs)
            x0 = jnp.asarray(x_prev[b])
            if h_prev[b] is None:
                r = exact(x0, jnp.zeros((m, p, p)), *rest_args)
            else:
                r = quasi(x0, jnp.asarray(h_prev[b]), *rest_args)
                if not bool(np.all(np.asarray(r.converged))):
                    # BFGS from the neighbour's Hessian stalled somewhere: redo the row exactly
                    re = exact(x0, jnp.zeros((m, p, p)), *rest_args)
                    r = _take_where(~np.asarray(r.converged), re, r)
            conv = np.asarray(r.converged)
            x = np.asarray(r.x)
            vals.append(np.asarray(r.fun))
            xs.append(x)
            oks.append(conv)
            x_prev[b] = np.where(conv[:, None], x, x_prev[b])
            h_prev[b] = np.asarray(r.hessian)
        vals_a = np.stack(vals)
        pick = np.argmin(np.where(np.isfinite(vals_a), vals_a, np.inf), axis=0)
        for j in range(m):
            b = int(pick[j])
            if oks[b][j] and np.isfinite(vals_a[b, j]):
                table[i, j] = vals_a[b, j]
                for k, n in enumerate(nuis):
                    nuis_tab[n][i, j] = xs[b][j, k]
            else:
                fit = _point_fit(analysis, gamma[i], norm[j], {n: xs[b][j, k] for k, n in enumerate(nuis)})
                table[i, j] = fit.neg_llh
                for n in nuis:
                    nuis_tab[n][i, j] = fit.params[n]


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
    pieces: jax.Array,
    theta: dict,
    inputs: DiffuseInputs,
    segment: jax.Array,
    log_e_rel: jax.Array,
    gamma_pw: jax.Array,
) -> jax.Array:
    """Log-density with the astro flux replaced by per-bin normalisations ``pieces[j]``.

    ``segment[i]`` is the true-energy bin of event ``i`` (-1 outside: no astro flux),
    ``log_e_rel[i] = ln(E_i / E_j)``; ``inputs`` must carry flat priors on astro_norm and
    astro_gamma (see :func:`_piecewise_inputs`), which are set to 1 and 0 here so that the
    scaled ``astro_base`` is the whole astrophysical weight.
    """
    n_pieces = pieces.shape[0]
    eff = jnp.where(segment >= 0, pieces[jnp.clip(segment, 0, n_pieces - 1)], 0.0)
    shape = jnp.exp(-gamma_pw * log_e_rel)
    theta = dict(theta)
    theta["astro_gamma"] = jnp.asarray(0.0)
    theta["astro_norm"] = jnp.asarray(1.0)
    base = replace(inputs, astro_base=inputs.astro_base * eff * shape)
    return log_density(theta, base)


def _piecewise_inputs(inputs: DiffuseInputs) -> DiffuseInputs:
    """``inputs`` with flat priors on astro_norm / astro_gamma (replaced by the pieces)."""
    flat = Prior()
    priors = tuple((n, flat if n in ("astro_norm", "astro_gamma") else p) for n, p in inputs.priors)
    return replace(inputs, priors=priors)


class PiecewiseReference:
    """Reference model of the diffuse flux points: amplitude ``amplitude[j]`` in true-energy bin ``j``.

    Per-flavour (:math:`\\nu + \\bar\\nu`) intensity
    :math:`dN/dE = A_j\\,10^{-18}/3\\,(E/E_j)^{-\\gamma_\\mathrm{pw}}`
    [GeV^-1 cm^-2 s^-1 sr^-1] inside bin :math:`j` (:math:`E_j` its geometric centre,
    :math:`A_j` a six-neutrino normalisation in the unit of ``astro_norm``), the shape of
    the piecewise model, so that a flux point's ``norm`` :math:`\\nu_j` scales it to
    :math:`\\Phi_j = \\nu_j A_j`. Implements the ``dnde``, ``integral`` and
    ``energy_flux`` interface of :class:`bayesnu.frequentist.flux_points.FluxPointsProblem`.
    """

    def __init__(self, edges_gev: Sequence[float], gamma_pw: float, amplitude: Sequence[float]) -> None:
        self.edges = np.asarray(edges_gev, dtype=float)
        self.e_ref = np.sqrt(self.edges[:-1] * self.edges[1:])
        self.gamma_pw = float(gamma_pw)
        self.amplitude = np.asarray(amplitude, dtype=float)
        if self.amplitude.shape != self.e_ref.shape or not np.all(self.amplitude > 0):
            raise ConfigError("the reference needs one positive amplitude per flux-point bin")

    def _bin(self, e: np.ndarray) -> np.ndarray:
        j = np.searchsorted(self.edges, e, side="right") - 1
        return np.clip(j, 0, self.e_ref.size - 1)

    def dnde(self, e_gev: np.ndarray) -> np.ndarray:
        """Per-flavour dN/dE [GeV^-1 cm^-2 s^-1 sr^-1] (each energy in its bin; an edge in the upper one)."""
        e = np.asarray(e_gev, dtype=float)
        j = self._bin(e)
        return self.amplitude[j] * ASTRO_UNIT_PER_FLAVOUR * (e / self.e_ref[j]) ** -self.gamma_pw

    def _moment(self, e1: np.ndarray, e2: np.ndarray, k: float) -> np.ndarray:
        """:math:`\\int E^k\\,dN/dE\\,dE` over [e1, e2] inside one bin (that of the midpoint)."""
        e1, e2 = np.asarray(e1, dtype=float), np.asarray(e2, dtype=float)
        j = self._bin(np.sqrt(e1 * e2))
        ej, g = self.e_ref[j], self.gamma_pw
        p = k - g + 1.0
        val = ej**g * np.log(e2 / e1) if abs(p) < 1e-12 else ej**g * (e2**p - e1**p) / p
        return self.amplitude[j] * ASTRO_UNIT_PER_FLAVOUR * val

    def integral(self, e1_gev: np.ndarray, e2_gev: np.ndarray) -> np.ndarray:
        """Per-flavour integral flux [cm^-2 s^-1 sr^-1] between the energies (within one bin)."""
        return self._moment(e1_gev, e2_gev, 0.0)

    def energy_flux(self, e1_gev: np.ndarray, e2_gev: np.ndarray) -> np.ndarray:
        """Per-flavour energy flux [GeV cm^-2 s^-1 sr^-1] between the energies (within one bin)."""
        return self._moment(e1_gev, e2_gev, 1.0)


def _reference_amplitudes(analysis: DiffuseAnalysis, e_ref: np.ndarray) -> np.ndarray:
    """Six-neutrino normalisations at ``e_ref`` of the best-fit single power law (1 where it vanishes)."""
    fit = analysis.fit(compute_errors=False)
    norm, gamma = fit.params["astro_norm"], fit.params["astro_gamma"]
    amp = norm * (e_ref / ASTRO_PIVOT_GEV) ** -gamma
    ok = np.isfinite(amp) & (amp > 0)
    return np.where(ok, amp, 1.0)


def flux_points(
    analysis: DiffuseAnalysis,
    edges_gev: Sequence[float],
    gamma_pw: float = 2.0,
    n_scan: int = 15,
    ul_confidence: float = 0.95,
    progress: bool | None = None,
    norm_scan: Sequence[float] | None = None,
    reference: Sequence[float] | None = None,
) -> Table:
    """Differential flux points as a gammapy / GADF likelihood SED table (the shared engine).

    The astrophysical flux is replaced by :math:`\\Phi_j (E/E_j)^{-\\gamma_\\mathrm{pw}}`
    in true-energy bins :math:`j`; all :math:`\\Phi_j` and the free nuisance parameters
    are fitted together, and each bin's :math:`\\Phi_j` is profiled with everything else
    re-optimised, by :func:`bayesnu.frequentist.flux_points.estimate_flux_points` (the
    same code as the point-source flux points). Definitions as before: 1-sigma errors at
    :math:`\\Delta(-\\ln L) = 0.5`, one-sided upper limits at
    :math:`\\Delta(-\\ln L) = \\tfrac12 (\\Phi^{-1}(\\mathrm{cl}))^2` (1.353 for 95%),
    :math:`TS_j = 2\\,[\\min_{\\Phi_j = 0} - \\min]` of ``-LLH``; values are now found by
    root finding on the profile instead of interpolation on a coarse scan.

    Parameters
    ----------
    analysis
        The analysis (its fixed parameters and priors apply).
    edges_gev
        True-energy bin edges [GeV]; MC events outside get no astrophysical flux.
    gamma_pw
        Spectral index inside each bin.
    n_scan
        Points of the likelihood scan ``norm_scan`` / ``stat_scan`` when ``norm_scan``
        is not given: 0 and ``n_scan - 1`` values log-spaced over 0.1 .. 10 (relative
        to the reference).
    ul_confidence
        Confidence of the one-sided upper limits. The table's ``UL_CONF`` follows
        gammapy's convention :math:`1 - 2\\,Q(n_{\\sigma,UL})` (0.90 for 0.95 one-sided,
        :math:`n_{\\sigma,UL} = 1.645`); ``UL_1SIDE`` holds ``ul_confidence``.
    progress
        Progress bar over bins.
    norm_scan
        Scan values of the norm (relative to the reference; same for every bin).
    reference
        Six-neutrino normalisation :math:`A_j` at each bin's ``e_ref`` of the reference
        model (unit of ``astro_norm``); default: the best-fit single power law.

    Returns
    -------
    astropy.table.Table
        The shared engine's columns -- ``e_ref``, ``e_min``, ``e_max`` [GeV], ``norm``
        (relative to the reference, gammapy's convention), ``norm_err`` (Hessian),
        ``norm_errn``/``norm_errp`` (profile, 1 sigma; ``norm_errn = norm`` where the
        interval reaches 0), ``norm_ul``, ``ts``, ``sqrt_ts``, ``npred`` (all predicted
        events), ``npred_excess`` (astrophysical events from the bin), ``counts``
        (observed events in the fit), ``success``, ``norm_scan``, ``stat_scan``
        (:math:`-2\\ln L`), ``stat``, ``stat_null``, the GADF ``loglike`` forms, per-flavour
        ``dnde*`` and ``e2dnde*`` at ``e_ref`` (intensities per sr, with gammapy's units
        of an isotropic model, GeV^-1 cm^-2 s^-1 and GeV cm^-2 s^-1: a spectral model
        times a ``ConstantSpatialModel`` of 1 sr^-1; metadata ``SPATIAL``) -- plus
        ``astro_norm``, ``astro_norm_errn``, ``astro_norm_errp``, ``astro_norm_ul``:
        :math:`\\Phi_j` (six-neutrino flux at ``e_ref`` in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1,
        the unit of ``astro_norm``) and its errors; metadata ``SED_TYPE`` (likelihood),
        ``UL_CONF``, ``UL_1SIDE``, ``gamma_pw``. Write it
        with :func:`bayesnu.frequentist.flux_points.write_flux_points` (ECSV / FITS, read
        by ``gammapy.estimators.FluxPoints.read``); :meth:`FluxPoints.from_table` gives
        the former attribute view.
    """
    from bayesnu.frequentist.flux_points import FluxPointBin, FluxPointsProblem, estimate_flux_points

    edges = np.asarray(edges_gev, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise ConfigError("edges_gev must be at least two increasing positive energies [GeV]")
    if not 0.5 < ul_confidence < 1.0:
        raise ConfigError(f"ul_confidence must lie in (0.5, 1), got {ul_confidence}")
    e_ref = np.sqrt(edges[:-1] * edges[1:])
    nb = e_ref.size
    amp = _reference_amplitudes(analysis, e_ref) if reference is None else np.asarray(reference, float)
    ref = PiecewiseReference(edges, gamma_pw, amp)
    energy = np.asarray(analysis.mc_fields["primaryEnergy"], dtype=float)
    seg = np.digitize(energy, edges) - 1
    seg[(seg < 0) | (seg >= nb)] = -1
    log_e_rel = np.log(energy / e_ref[np.clip(seg, 0, nb - 1)])
    inputs = _piecewise_inputs(analysis.inputs)
    common = {"inputs": inputs, "segment": jnp.asarray(seg), "log_e_rel": jnp.asarray(log_e_rel),
              "gamma_pw": jnp.asarray(float(gamma_pw)), "amp": jnp.asarray(amp)}  # fmt: skip

    # joint fit of all pieces (relative to the reference) and nuisances: every bin's start
    specs = [s for s in analysis.parameter_specs() if s.name not in ("astro_gamma", "astro_norm")]
    names = [s.name for s in specs if s.name not in analysis.fixed]
    fixed = {k: float(v) for k, v in analysis.fixed.items()}

    def joint(theta: dict, c: dict) -> jax.Array:
        x = jnp.stack([theta[f"piece_{j}"] for j in range(nb)])
        rest = {k: v for k, v in theta.items() if not k.startswith("piece_")}
        return _piecewise_log_density(
            x * c["amp"], rest, c["inputs"], c["segment"], c["log_e_rel"], c["gamma_pw"]
        )

    piece_specs = [ParamSpec(f"piece_{j}", 1.0, 0.0, math.inf) for j in range(nb)]
    glob = maximize(joint, specs + piece_specs, args=(common,), fixed=fixed, compute_cov=False)
    best = np.array([glob.params[f"piece_{j}"] for j in range(nb)])
    bounds = {s.name: (s.lower, s.upper) for s in specs}

    # nuisance vector: [all nb relative pieces, free parameters]; slot j of bin j is a dummy,
    # decoupled from the likelihood and held at its start by a quadratic term that vanishes
    # there (the Hessian stays invertible and every bin compiles the same statistic)
    def unpack(norm: jax.Array, nuis: jax.Array, data: dict) -> tuple[jax.Array, dict]:
        pieces = nuis[:nb].at[data["j"]].set(norm) * data["amp"]
        theta = {n: jnp.asarray(v) for n, v in fixed.items()}
        theta.update({n: nuis[nb + k] for k, n in enumerate(names)})
        return pieces, theta

    def stat(norm: jax.Array, nuis: jax.Array, data: dict) -> jax.Array:
        pieces, theta = unpack(norm, nuis, data)
        logp = _piecewise_log_density(
            pieces, theta, data["inputs"], data["segment"], data["log_e_rel"], data["gamma_pw"]
        )
        return -2.0 * logp + (nuis[data["j"]] - data["dummy"]) ** 2

    def npred(norm: jax.Array, nuis: jax.Array, data: dict) -> jax.Array:
        pieces, theta = unpack(norm, nuis, data)
        return jnp.sum(_piecewise_bin_sums(pieces, theta, data)[0])

    def npred_signal(norm: jax.Array, nuis: jax.Array, data: dict) -> jax.Array:
        pieces, theta = unpack(norm, nuis, data)
        only = jnp.zeros_like(pieces).at[data["j"]].set(pieces[data["j"]])
        return _astro_events(only, theta, data)

    n_obs = float(np.sum(analysis.counts[np.asarray(analysis.inputs.has_mc)]))
    bins = [
        FluxPointBin(float(edges[j]), float(edges[j + 1]),
                     {**common, "j": jnp.asarray(j, dtype=jnp.int32), "dummy": jnp.asarray(best[j])},
                     counts=n_obs)
        for j in range(nb)
    ]  # fmt: skip
    nuis0 = np.concatenate([best, [glob.params[n] for n in names]])
    nuis_bounds = [(0.0, math.inf)] * nb + [bounds[n] for n in names]
    scan = (
        np.concatenate([[0.0], np.geomspace(0.1, 10.0, max(n_scan - 1, 1))])
        if norm_scan is None
        else np.asarray(norm_scan, dtype=float)
    )
    problem = FluxPointsProblem(
        stat=stat, bins=bins, reference=ref, npred=npred, npred_signal=npred_signal,
        nuisance_init=nuis0, nuisance_bounds=nuis_bounds,
    )  # fmt: skip
    n_sigma_ul = float(stats.norm.ppf(ul_confidence))
    # thousands of small L-BFGS-B problems: multi-threaded BLAS only adds overhead (10x on 2 cores)
    with threadpool_limits(1, user_api="blas"):
        table = estimate_flux_points(
            problem,
            reoptimize=True,
            n_sigma=1.0,
            n_sigma_ul=n_sigma_ul,
            norm_scan=scan,
            norm_bounds=(0.0, math.inf),
            norm_init=1.0,
            progress=progress,
        )
    return _finish_table(table, ref, -2.0 * glob.logp, gamma_pw, ul_confidence, analysis.likelihood)


def _finish_table(
    table: Table,
    ref: PiecewiseReference,
    stat_joint: float,
    gamma_pw: float,
    ul_confidence: float,
    likelihood: str,
) -> Table:
    """Diffuse specifics on the shared engine's table: errors at the bound, success, Phi_j columns."""
    # an interval reaching the physical bound: lower error down to 0 (as the former FluxPoints)
    at_bound = ~np.isfinite(np.asarray(table["norm_errn"], dtype=float)) & (
        np.asarray(table["ts"], dtype=float) < 1.0
    )
    table["norm_errn"][at_bound] = table["norm"][at_bound]
    ref_dnde = ref.dnde(ref.e_ref)
    for rep, refcol in (("dnde", ref_dnde), ("e2dnde", ref.e_ref**2 * ref_dnde)):
        table[f"{rep}_errn"][at_bound] = table["norm_errn"][at_bound] * refcol[at_bound]
    # L-BFGS-B at ftol 1e-15 often ends with ABNORMAL_TERMINATION although converged: a bin whose
    # fit reaches the joint optimum (found beforehand, every piece and nuisance free) succeeded
    reached = np.asarray(table["stat"], dtype=float) <= stat_joint + 1e-6
    table["success"] = np.asarray(table["success"], dtype=bool) | reached
    for suffix in ("", "_errn", "_errp", "_ul"):
        table[f"astro_norm{suffix}"] = np.asarray(table[f"norm{suffix}"], dtype=float) * ref.amplitude
    table.meta.update(
        {
            "gamma_pw": float(gamma_pw),
            "UL_1SIDE": float(ul_confidence),
            "energy": "true neutrino energy",
            "PHI_UNIT": "astro_norm*: six-neutrino flux at e_ref, 1e-18 GeV-1 cm-2 s-1 sr-1",
            "flux": "per flavour (nu + nubar)",
            # gammapy's isotropic diffuse convention: a spectral model in cm-2 s-1 GeV-1 times a
            # ConstantSpatialModel of 1 sr-1, so the flux columns hold intensities per sr
            "SPATIAL": "ConstantSpatialModel 1 sr-1: dnde, e2dnde and ref_* are per sr",
            "LIKELIHD": likelihood,
            "analysis": "diffuse",
        }
    )
    return table


def _piecewise_bin_sums(pieces: jax.Array, theta: dict, data: dict) -> tuple[jax.Array, jax.Array]:
    """Per-bin expected events (and squared weights) of the piecewise model, bins with MC only."""
    full = dict(theta, astro_gamma=jnp.asarray(0.0), astro_norm=jnp.asarray(1.0))
    inp = data["inputs"]
    eff = jnp.where(data["segment"] >= 0, pieces[jnp.clip(data["segment"], 0, pieces.shape[0] - 1)], 0.0)
    base = replace(inp, astro_base=inp.astro_base * eff * jnp.exp(-data["gamma_pw"] * data["log_e_rel"]))
    mu, s2 = bin_sums(event_weights(full, base), inp.bin_index, inp.n_bins)
    return jnp.where(inp.has_mc, mu, 0.0), jnp.where(inp.has_mc, s2, 0.0)


def _astro_events(pieces: jax.Array, theta: dict, data: dict) -> jax.Array:
    """Expected astrophysical events (bins with MC) of the piecewise model."""
    full = dict(theta, astro_gamma=jnp.asarray(0.0), astro_norm=jnp.asarray(1.0))
    inp = data["inputs"]
    eff = jnp.where(data["segment"] >= 0, pieces[jnp.clip(data["segment"], 0, pieces.shape[0] - 1)], 0.0)
    base = replace(inp, astro_base=inp.astro_base * eff * jnp.exp(-data["gamma_pw"] * data["log_e_rel"]))
    w = component_weights(full, base)["astro"]
    mu = jax.ops.segment_sum(w, inp.bin_index, num_segments=inp.n_bins, indices_are_sorted=True)
    return jnp.sum(jnp.where(inp.has_mc, mu, 0.0))


@dataclass(frozen=True)
class FluxPoints:
    """Attribute view of a diffuse flux-point table (the former return type of :func:`flux_points`).

    ``norm`` is the six-neutrino flux at ``e_ref_gev`` in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1
    (like ``astro_norm``); ``e2dnde`` the per-flavour (nu + nubar) :math:`E^2\\,dN/dE`
    [GeV cm^-2 s^-1 sr^-1] at ``e_ref_gev``. ``norm_scan`` / ``neg_llh_scan`` hold the
    profile of each bin (rows) in its normalisation (``-LLH``, i.e. ``stat_scan / 2``).
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

    @classmethod
    def from_table(cls, table: Table) -> FluxPoints:
        """The view of a table returned by :func:`flux_points` (or read back from a file)."""

        def col(name: str) -> np.ndarray:
            c = table[name]
            if name.startswith("e_") and c.unit is not None:
                return np.asarray(u.Quantity(c).to_value(u.GeV), dtype=float)
            return np.asarray(c, dtype=float)

        amp = col("astro_norm") / np.where(col("norm") != 0, col("norm"), np.nan)
        amp = np.where(np.isfinite(amp), amp, np.asarray(table["ref_dnde"]) / ASTRO_UNIT_PER_FLAVOUR)
        return cls(
            col("e_min"),
            col("e_max"),
            col("e_ref"),
            col("astro_norm"),
            col("astro_norm_errn"),
            col("astro_norm_errp"),
            col("astro_norm_ul"),
            col("ts"),
            np.asarray(table["norm_scan"], dtype=float) * amp[:, None],
            0.5 * np.asarray(table["stat_scan"], dtype=float),
            float(table.meta.get("gamma_pw", table.meta.get("GAMMA_PW", math.nan))),
            float(table.meta.get("UL_1SIDE", 0.95)),
        )

    @property
    def e2dnde(self) -> np.ndarray:
        """Per-flavour :math:`E^2 dN/dE` at ``e_ref_gev`` [GeV cm^-2 s^-1 sr^-1]."""
        return self.norm * ASTRO_UNIT_PER_FLAVOUR * self.e_ref_gev**2

    def to_dict(self) -> dict:
        """Arrays as lists (for JSON)."""
        d = {k: np.asarray(v).tolist() for k, v in self.__dict__.items()}
        d["e2dnde_per_flavour_gev_cm2_s_sr"] = self.e2dnde.tolist()
        return d


def astro_norm_to_per_flavour(norm: float | np.ndarray) -> float | np.ndarray:
    """Six-neutrino ``astro_norm`` -> per-flavour (nu + nubar) flux at 100 TeV (same unit)."""
    return np.asarray(norm) / 3.0 if isinstance(norm, np.ndarray) else norm / 3.0
