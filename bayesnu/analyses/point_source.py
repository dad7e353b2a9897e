r"""Time-integrated point-source analysis: NumPyro model, ML fit, profiles, posterior.

The likelihood is :mod:`bayesnu.likelihood.pointsource` (the public-data analysis of
SkyLLH, reproduced term by term); this module wires it to priors and engines::

    import bayesnu as bn
    rel = bn.data.load_ps_release("icecube_10year_ps", seasons="IC40")
    ana = PointSourceAnalysis(rel, Source(ra_deg=40.67, dec_deg=-0.01, name="NGC 1068"))
    fit = ana.fit()                    # ML: ts, ns, gamma, flux_norm, Wilks p-value
    post = ana.sample(chains=4, draws=1000, seed=1)   # NUTS -> ArviZ DataTree

Generative model (per season :math:`s`): the signal expectation
:math:`n_{s,s} = n_s f_s(\gamma)` (or :math:`\Phi_0 Y_s(\gamma)` with a prior on the
flux normalisation), the background expectation :math:`n_{b,s}` either profiled
(:math:`n_{b,s} = N_s - n_{s,s}`, which makes the posterior proportional to
prior x Lambda, the same function the TS uses) or free with its own prior (full extended
Poisson likelihood), and event densities from the instrument response.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr
from scipy import stats

from bayesnu.analyses.priors import Prior
from bayesnu.analyses.ps_inputs import (
    ResponseSettings,
    SeasonModel,
    build_inputs,
    season_models,
    selection_masks,
)
from bayesnu.data.ps_formats import EventTable
from bayesnu.data.ps_release import PSRelease, Season
from bayesnu.errors import ConfigError
from bayesnu.inference.nuts import run_nuts
from bayesnu.irf.yields import YieldGrid, build_yield_grid
from bayesnu.likelihood.pointsource import (
    PSInputs,
    event_ratios,
    log_extended,
    log_lambda,
    log_lambda_from_ratios,
    log_yields,
)
from bayesnu.likelihood.ps_fit import fit_ns_gamma
from bayesnu.sky.patch import TangentPlanePrior, offset_position


@dataclass(frozen=True)
class Source:
    """A point-like source (degrees at the interface).

    Raises
    ------
    ConfigError
        If the position is outside the sky (Dec outside [-90, 90], RA outside [0, 360]).
    """

    ra_deg: float
    dec_deg: float
    name: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.ra_deg) and np.isfinite(self.dec_deg)):
            raise ConfigError(f"source position must be finite, got RA={self.ra_deg}, Dec={self.dec_deg}")
        if not -90.0 <= self.dec_deg <= 90.0:
            raise ConfigError(f"source declination {self.dec_deg} deg is outside the sky [-90, 90]")
        if not 0.0 <= self.ra_deg <= 360.0:
            raise ConfigError(f"source right ascension {self.ra_deg} deg is outside [0, 360]")

    @property
    def ra_rad(self) -> float:
        """Right ascension [rad]."""
        return math.radians(self.ra_deg)

    @property
    def dec_rad(self) -> float:
        """Declination [rad]."""
        return math.radians(self.dec_deg)


@dataclass(frozen=True)
class PSPriors:
    """Priors of the point-source model.

    Attributes
    ----------
    gamma
        Prior of the spectral index (default Uniform(1, 4)).
    ns
        Prior of the total signal count (default Uniform(0, 1000)); used unless
        ``flux_norm`` is given.
    flux_norm
        Prior of Phi0 at E0 [GeV^-1 cm^-2 s^-1]; when set, the signal is parametrised
        by the flux and ns per season follows from the detector yield.
    position_sigma_deg
        Width of the prior on the source position around the catalogue position
        [deg]; ``None`` keeps the position fixed.
    position_prior
        ``"vmf"`` (von Mises-Fisher, kappa = 1/sigma^2) or ``"gaussian"`` (2D Gaussian
        in the tangent plane).
    background
        ``"profiled"`` (n_b = N - n_s per season) or ``"free"`` (n_b per season with
        a flat prior; full extended likelihood).
    position_map
        A sky-map prior on the position (:class:`~bayesnu.sky.patch.TangentPlanePrior`,
        e.g. from a HEALPix map); the offsets from its centre are sampled in a box of
        its radius. Exclusive with ``position_sigma_deg``.
    """

    gamma: Prior = field(default_factory=lambda: Prior("uniform", low=1.0, high=4.0))
    ns: Prior = field(default_factory=lambda: Prior("uniform", low=0.0, high=1000.0))
    flux_norm: Prior | None = None
    position_sigma_deg: float | None = None
    position_prior: str = "vmf"
    background: str = "profiled"
    position_map: TangentPlanePrior | None = None

    def __post_init__(self) -> None:
        if self.position_map is not None and self.position_sigma_deg is not None:
            raise ConfigError("give either position_sigma_deg or position_map, not both")
        if self.position_prior not in ("vmf", "gaussian"):
            raise ConfigError("position_prior must be 'vmf' or 'gaussian'")
        if self.background not in ("profiled", "free"):
            raise ConfigError("background must be 'profiled' or 'free'")
        if self.position_sigma_deg is not None and not self.position_sigma_deg > 0:
            raise ConfigError("position_sigma_deg must be positive")


@dataclass(frozen=True)
class PointSourceFit:
    """Maximum-likelihood result of :meth:`PointSourceAnalysis.fit`.

    Attributes
    ----------
    ts
        Test statistic 2 ln Lambda (ns >= 0).
    ns, gamma
        Best fit.
    flux_norm
        dN/dE at ``e0_gev`` for the best fit [GeV^-1 cm^-2 s^-1] (muon neutrino +
        antineutrino).
    e2dnde
        E^2 dN/dE at ``e0_gev`` [GeV cm^-2 s^-1].
    e0_gev
        Reference energy [GeV].
    pvalue_wilks, sigma_wilks
        Wilks p-value with the ns >= 0 boundary, p = chi2_1.sf(TS)/2, and its one-sided
        Gaussian significance.
    converged
        The fit's projected gradient vanished.
    n_events, n_selected
        Events in all seasons / selected around the source.
    livetime_days
        Summed livetime.
    ns_per_season
        Expected signal events per season at the best fit.
    """

    ts: float
    ns: float
    gamma: float
    flux_norm: float
    e2dnde: float
    e0_gev: float
    pvalue_wilks: float
    sigma_wilks: float
    converged: bool
    n_events: int
    n_selected: int
    livetime_days: float
    ns_per_season: dict[str, float]
    source: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def wilks_pvalue(ts: float, dof: int = 1) -> tuple[float, float]:
    """One-sided Wilks p-value with the ns >= 0 boundary, and its Gaussian significance.

    ``p = 0.5 * chi2(dof).sf(TS)`` for TS > 0, 1 otherwise (half of the experiments
    fluctuate to ns = 0).
    """
    p = 1.0 if ts <= 0 else 0.5 * float(stats.chi2.sf(ts, dof))
    sigma = float(stats.norm.isf(p)) if p < 0.5 else 0.0
    return p, sigma


def point_source_model(
    inputs: PSInputs,
    priors: PSPriors,
    e0_gev: float,
    season_names: tuple[str, ...],
    yield_grid: YieldGrid | None = None,
) -> None:
    """NumPyro model of the point-source analysis (see the module docstring).

    Sites: ``gamma``, ``ns`` or ``flux_norm``, optional ``pos_x``/``pos_y`` (tangent-plane
    offsets [rad]) and ``nb`` (background per season); deterministics ``ns``,
    ``flux_norm``, ``e2dnde`` (at ``e0_gev``), ``ns_season``, ``ra_deg``/``dec_deg``.
    """
    gamma = numpyro.sample("gamma", priors.gamma.to_numpyro())
    ra = dec = None
    if priors.position_sigma_deg is not None:
        sig = math.radians(priors.position_sigma_deg)
        x = numpyro.sample("pos_x", dist.Normal(0.0, sig))
        y = numpyro.sample("pos_y", dist.Normal(0.0, sig))
        if priors.position_prior == "vmf":
            # Exact von Mises-Fisher density exp(kappa cos r) per steradian, kappa = 1/sig^2:
            # the tangent-plane Gaussian times the Jacobian sin(r)/r and the correction.
            r = jnp.sqrt(x * x + y * y + 1e-300)
            kappa = 1.0 / sig**2
            numpyro.factor("vmf", kappa * (jnp.cos(r) - 1.0 + 0.5 * r * r) + jnp.log(jnp.sinc(r / jnp.pi)))
        ra, dec = offset_position(inputs.src_ra, inputs.src_dec, x, y)
    elif priors.position_map is not None:
        pm = priors.position_map
        x = numpyro.sample("pos_x", dist.Uniform(-pm.radius_rad, pm.radius_rad))
        y = numpyro.sample("pos_y", dist.Uniform(-pm.radius_rad, pm.radius_rad))
        numpyro.factor("position_map", pm.log_prior(x, y))
        ra, dec = pm.position(x, y)
    if ra is not None:
        numpyro.deterministic("ra_deg", jnp.rad2deg(ra))
        numpyro.deterministic("dec_deg", jnp.rad2deg(dec))
    if ra is not None and yield_grid is not None:
        ly = yield_grid(jnp.sin(dec), gamma)
    else:
        ly = log_yields(inputs, gamma)
    frac = jax.nn.softmax(ly)
    ytot = jnp.exp(jax.nn.logsumexp(ly))
    if priors.flux_norm is not None:
        phi = numpyro.sample("flux_norm", priors.flux_norm.to_numpyro())
        ns = numpyro.deterministic("ns", phi * ytot)
    else:
        ns = numpyro.sample("ns", priors.ns.to_numpyro())
        phi = numpyro.deterministic("flux_norm", ns / ytot)
    numpyro.deterministic("e2dnde", phi * e0_gev**2)
    ns_season = numpyro.deterministic("ns_season", ns * frac)
    if priors.background == "profiled":
        ratios = event_ratios(inputs, gamma, ra, dec)
        ll = log_lambda_from_ratios(inputs, ns, frac, ratios)
    else:
        n_tot = inputs.n_total
        nb = numpyro.sample("nb", dist.Uniform(0.5 * n_tot, 1.5 * n_tot).to_event(1))
        ll = log_extended(ns_season, nb, gamma, inputs, ra, dec)
    numpyro.factor("loglike", ll)
    _ = season_names


@partial(jax.jit, static_argnames=("ns_max",))
def _profile_gamma(vals: jax.Array, inputs: PSInputs, ns_max: float):
    """ln Lambda profiled over ns at each spectral index in ``vals``."""
    return jax.vmap(lambda g: fit_ns_gamma(inputs, ns_max=ns_max, gamma_fixed=g))(vals)


@partial(jax.jit, static_argnames=("glo", "ghi", "flux"))
def _profile_ns(vals: jax.Array, inputs: PSInputs, glo: float, ghi: float, flux: bool):
    """ln Lambda profiled over gamma at each ns (or Phi0 when ``flux``) in ``vals``."""
    nodes = jnp.linspace(glo, ghi, max(2, round((ghi - glo) / inputs.dgamma) * 4 + 1))

    def at_gamma(v, g):
        ns = v * jnp.exp(jax.nn.logsumexp(log_yields(inputs, g))) if flux else v
        return log_lambda({"ns": ns, "gamma": g}, inputs)

    def prof(v):
        ll = jax.vmap(lambda g: at_gamma(v, g))(nodes)
        g = nodes[jnp.argmax(ll)]

        def newton(_, g):
            d1 = jax.grad(lambda gg: at_gamma(v, gg))(g)
            d2 = jax.grad(jax.grad(lambda gg: at_gamma(v, gg)))(g)
            step = jnp.where(d2 < 0, -d1 / jnp.where(d2 < 0, d2, -1.0), 0.0)
            step = jnp.clip(step, -inputs.dgamma, inputs.dgamma)
            cand = jnp.clip(g + step, glo, ghi)
            return jnp.where(at_gamma(v, cand) >= at_gamma(v, g), cand, g)

        g = jax.lax.fori_loop(0, 8, newton, g)
        return at_gamma(v, g), g

    return jax.vmap(prof)(vals)


class PointSourceAnalysis:
    """Time-integrated point-source analysis over any set of seasons.

    Parameters
    ----------
    release
        Loaded release (:func:`bayesnu.data.ps_release.load_ps_release`) or a list of
        seasons, or pre-built :class:`SeasonModel` objects (to share them between
        sources).
    source
        The source (position in degrees).
    settings
        Response settings (gamma grid, E0, cut-off, interpolation, yield convention).
    selection_deg
        Half-size of the box event selection [deg] (``None``: all events).
    ns_max, gamma_bounds
        Fit ranges (SkyLLH defaults: ns in [0, 1000], gamma in [1, 4]).
    priors
        Priors of the NumPyro model.
    events
        Analyse these events instead of the seasons' own (pseudo-data; one table per
        season; the background PDFs still come from the seasons' data).
    pad_to
        Static length of the event arrays (default: next power of two).
    """

    def __init__(
        self,
        release: PSRelease | Sequence[Season] | Sequence[SeasonModel],
        source: Source,
        *,
        settings: ResponseSettings | None = None,
        selection_deg: float | None = 10.0,
        ns_max: float = 1000.0,
        gamma_bounds: tuple[float, float] = (1.0, 4.0),
        priors: PSPriors | None = None,
        events: Sequence[EventTable] | None = None,
        pad_to: int | None = None,
    ) -> None:
        if not gamma_bounds[0] < gamma_bounds[1]:
            raise ConfigError(f"gamma bounds inverted: {gamma_bounds}")
        items = list(release.seasons.values()) if isinstance(release, PSRelease) else list(release)
        if items and isinstance(items[0], SeasonModel):
            self.models: list[SeasonModel] = items  # type: ignore[assignment]
            self.settings = self.models[0].settings
        else:
            self.settings = settings or ResponseSettings()
            self.models = season_models(items, self.settings)  # type: ignore[arg-type]
        g = np.asarray(self.settings.gamma_grid)
        if gamma_bounds[0] < g[0] or gamma_bounds[1] > g[-1]:
            raise ConfigError(
                f"gamma bounds {gamma_bounds} exceed the tabulated range [{g[0]:g}, {g[-1]:g}]; "
                "extend ResponseSettings.gamma_grid"
            )
        self.source = source
        self.selection_deg = selection_deg
        self.ns_max = float(ns_max)
        self.gamma_bounds = (float(gamma_bounds[0]), float(gamma_bounds[1]))
        self.priors = priors or PSPriors()
        self.inputs: PSInputs = build_inputs(
            self.models,
            source.ra_rad,
            source.dec_rad,
            selection_deg=selection_deg,
            events=events,
            pad_to=pad_to,
        )
        tables = [m.events for m in self.models] if events is None else list(events)
        masks = selection_masks(tables, source.ra_rad, source.dec_rad, selection_deg)
        #: log10 E of the selected events per season, in the order of :attr:`inputs`.
        self.selected_log10_energy: list[np.ndarray] = [t.log10_energy[m] for t, m in zip(tables, masks)]
        self._fit_fn = jax.jit(
            partial(
                fit_ns_gamma,
                ns_max=self.ns_max,
                gamma_min=self.gamma_bounds[0],
                gamma_max=self.gamma_bounds[1],
            )
        )

    # ------------------------------------------------------------------ basics
    @property
    def season_names(self) -> tuple[str, ...]:
        """Names of the seasons in the analysis."""
        return tuple(m.name for m in self.models)

    @property
    def n_events(self) -> int:
        """Total number of events."""
        return int(np.sum(np.asarray(self.inputs.n_total)))

    @property
    def n_selected(self) -> int:
        """Events selected around the source."""
        return int(np.sum(np.asarray(self.inputs.events.valid)))

    @property
    def livetime_days(self) -> float:
        """Summed livetime [days]."""
        return float(sum(m.livetime_s for m in self.models) / 86400.0)

    @property
    def e0_gev(self) -> float:
        """Reference energy of the flux normalisation [GeV]."""
        return self.settings.e0_gev

    def log_yield_total(self, gamma: float) -> float:
        """ln of the summed detector yield per unit Phi0 at ``gamma`` (events per GeV^-1 cm^-2 s^-1)."""
        return float(jax.nn.logsumexp(log_yields(self.inputs, jnp.asarray(gamma))))

    def flux_norm(self, ns: float, gamma: float) -> float:
        """Phi0 at E0 [GeV^-1 cm^-2 s^-1] for ``ns`` total signal events at index ``gamma``."""
        return float(ns) * math.exp(-self.log_yield_total(gamma))

    def ns_from_flux(self, flux_norm: float, gamma: float) -> float:
        """Total expected signal events for Phi0 = ``flux_norm`` [GeV^-1 cm^-2 s^-1]."""
        return float(flux_norm) * math.exp(self.log_yield_total(gamma))

    def log_lambda(self, ns: float, gamma: float) -> float:
        """ln Lambda at (ns, gamma)."""
        return float(log_lambda({"ns": jnp.asarray(ns), "gamma": jnp.asarray(gamma)}, self.inputs))

    # ------------------------------------------------------------------ ML fit
    def fit(self, gamma_fixed: float | None = None) -> PointSourceFit:
        """Maximum-likelihood fit of (ns, gamma), TS and flux (see :class:`PointSourceFit`)."""
        if gamma_fixed is None:
            r = self._fit_fn(self.inputs)
        else:
            if not self.gamma_bounds[0] <= gamma_fixed <= self.gamma_bounds[1]:
                raise ConfigError(f"gamma_fixed={gamma_fixed} outside {self.gamma_bounds}")
            r = fit_ns_gamma(self.inputs, ns_max=self.ns_max, gamma_fixed=gamma_fixed)
        ns, gamma, ts = float(r.ns), float(r.gamma), float(r.ts)
        p, sig = wilks_pvalue(ts)
        phi = self.flux_norm(ns, gamma)
        frac = np.asarray(jax.nn.softmax(log_yields(self.inputs, jnp.asarray(gamma))))
        return PointSourceFit(
            ts=ts,
            ns=ns,
            gamma=gamma,
            flux_norm=phi,
            e2dnde=phi * self.e0_gev**2,
            e0_gev=self.e0_gev,
            pvalue_wilks=p,
            sigma_wilks=sig,
            converged=bool(r.converged),
            n_events=self.n_events,
            n_selected=self.n_selected,
            livetime_days=self.livetime_days,
            ns_per_season={n: float(ns * f) for n, f in zip(self.season_names, frac)},
            source={"name": self.source.name, "ra_deg": self.source.ra_deg, "dec_deg": self.source.dec_deg},
        )

    # ------------------------------------------------------------------ profiles
    def profile(self, parameter: str, values: Sequence[float]) -> dict[str, np.ndarray]:
        """Profile likelihood over ``parameter`` (``"ns"``, ``"gamma"`` or ``"flux_norm"``).

        Returns
        -------
        dict
            ``values``, ``log_lambda`` (profiled over the other parameter), the
            best-fit other parameter(s) and ``delta_ts`` = 2 (max ln Lambda - profile).
        """
        vals = jnp.asarray(np.asarray(values, dtype=float))
        best = self.fit()
        glo, ghi = self.gamma_bounds
        if parameter == "gamma":
            res = _profile_gamma(vals, self.inputs, self.ns_max)
            out = {
                "values": np.asarray(vals),
                "log_lambda": np.asarray(res.log_lambda),
                "ns": np.asarray(res.ns),
            }
        elif parameter in ("ns", "flux_norm"):
            ll, gam = _profile_ns(vals, self.inputs, glo, ghi, parameter == "flux_norm")
            out = {"values": np.asarray(vals), "log_lambda": np.asarray(ll), "gamma": np.asarray(gam)}
        else:
            raise ConfigError(f"cannot profile {parameter!r}; choose ns, gamma or flux_norm")
        out["delta_ts"] = 2.0 * (max(best.ts / 2.0, float(np.max(out["log_lambda"]))) - out["log_lambda"])
        return out

    # ------------------------------------------------------------------ Bayesian
    def _check_priors(self, priors: PSPriors) -> None:
        lo, hi = self.gamma_bounds
        priors.gamma.check_allowed("gamma", lo, hi)
        if priors.flux_norm is None:
            priors.ns.check_allowed("ns", 0.0, math.inf)
        else:
            priors.flux_norm.check_allowed("flux_norm", 0.0, math.inf)

    def model_kwargs(self, priors: PSPriors | None = None) -> dict[str, Any]:
        """Arguments of :func:`point_source_model` for this analysis."""
        priors = priors or self.priors
        self._check_priors(priors)
        grid = None
        if priors.position_sigma_deg is not None or priors.position_map is not None:
            grid = build_yield_grid(
                [m.season.effective_area for m in self.models],
                [m.livetime_s for m in self.models],
                np.asarray(self.settings.gamma_grid),
                dec_axis=self.settings.dec_axis,
                e0_gev=self.settings.e0_gev,
                e_cut_gev=self.settings.e_cut_gev,
            )
        return {
            "inputs": self.inputs,
            "priors": priors,
            "e0_gev": self.e0_gev,
            "season_names": self.season_names,
            "yield_grid": grid,
        }

    def sample(
        self,
        *,
        chains: int = 4,
        draws: int = 1000,
        warmup: int = 1000,
        seed: int = 0,
        priors: PSPriors | None = None,
        chain_method: str | None = None,
        target_accept: float = 0.8,
        progress_bar: bool | None = None,
    ) -> xr.DataTree:
        """NUTS posterior as an ArviZ DataTree (posterior, sample_stats, observed_data).

        The posterior holds ``ns``, ``gamma``, ``flux_norm`` (Phi0 at E0,
        GeV^-1 cm^-2 s^-1), ``e2dnde`` (GeV cm^-2 s^-1), ``ns_season`` (per season) and,
        with a position prior, ``ra_deg``/``dec_deg``.
        """
        priors = priors or self.priors
        kwargs = self.model_kwargs(priors)
        best = self.fit()
        init = {"gamma": float(np.clip(best.gamma, self.gamma_bounds[0] + 0.05, self.gamma_bounds[1] - 0.05))}
        if priors.flux_norm is None:
            lo, hi = priors.ns.support
            init["ns"] = float(np.clip(max(best.ns, 1.0), lo + 1e-3, min(hi, self.ns_max) - 1e-3))
        if priors.position_sigma_deg is not None or priors.position_map is not None:
            init["pos_x"] = init["pos_y"] = 0.0
        ev = self.inputs.events
        valid = np.asarray(ev.valid)
        observed = {
            "n_events_season": xr.DataArray(np.asarray(self.inputs.n_total, dtype=int), dims=["season"]),
            "n_selected_season": xr.DataArray(
                np.bincount(np.asarray(ev.season)[valid], minlength=len(self.models)), dims=["season"]
            ),
            "livetime_days_season": xr.DataArray(
                [m.livetime_s / 86400.0 for m in self.models], dims=["season"]
            ),
        }
        dt = run_nuts(
            point_source_model,
            model_kwargs=kwargs,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            chain_method=chain_method,
            target_accept=target_accept,
            init_values=init,
            progress_bar=progress_bar,
            observed_data=observed,
            attrs={
                "analysis": "point_source",
                "source": self.source.name,
                "source_ra_deg": self.source.ra_deg,
                "source_dec_deg": self.source.dec_deg,
                "seasons": ",".join(self.season_names),
                "e0_gev": self.e0_gev,
                "background": priors.background,
            },
        )
        post = dt["posterior"].to_dataset()
        if "ns_season" in post:
            dims = post["ns_season"].dims
            post = post.rename({dims[-1]: "season"}).assign_coords(season=list(self.season_names))
        for name in ("observed_data",):
            ds = dt[name].to_dataset().assign_coords(season=list(self.season_names))
            dt[name] = xr.DataTree(ds)
        dt["posterior"] = xr.DataTree(post)
        return dt

    def with_source(self, source: Source) -> PointSourceAnalysis:
        """The same analysis (shared season models) for another source."""
        return PointSourceAnalysis(
            self.models,
            source,
            selection_deg=self.selection_deg,
            ns_max=self.ns_max,
            gamma_bounds=self.gamma_bounds,
            priors=self.priors,
        )

    def with_priors(self, **changes: Any) -> PointSourceAnalysis:
        """A copy with some priors replaced (keyword arguments of :class:`PSPriors`)."""
        new = PointSourceAnalysis.__new__(PointSourceAnalysis)
        new.__dict__.update(self.__dict__)
        new.priors = replace(self.priors, **changes)
        return new
