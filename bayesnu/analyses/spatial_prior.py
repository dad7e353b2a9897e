r"""Spatial-prior analysis: a sky map as the prior on the source position.

The point-source likelihood of :mod:`bayesnu.likelihood.pointsource` with the source
position drawn from a HEALPix prior map :math:`\pi_p` (probability per pixel), e.g. a
gravitational-wave or neutrino-alert localisation. One vectorised computation per pixel
(:mod:`bayesnu.sky.scan`) gives both views:

* **Frequentist** (csky's ``SpatialPriorTrialRunner``): the TS map plus the prior term
  :math:`TS'_p = TS_p + 2\ln(\pi_p/\max\pi)`; the test statistic is
  :math:`\max(0, \max_p TS'_p)` and its p-value comes from background trials that
  scramble right ascension and rescan the prior region. Signal trials draw the true
  position from the prior map for every trial.
* **Bayesian**: the posterior over the pixel of the source is
  :math:`P(p\mid D) \propto \pi_p\,B_p`, with :math:`B_p` the likelihood ratio averaged
  over the priors of :math:`n_s` (flat on :math:`[0, n_{s,\max}]`) and :math:`\gamma`
  (flat), from the scan (:func:`~bayesnu.likelihood.ps_fit.log_marginal`); with a flat
  prior the posterior map is proportional to the marginal likelihood map.
  :math:`\sum_p \pi_p B_p` is the Bayes factor of "a source somewhere in the prior" against
  background. The dominant region is then refined continuously with NUTS
  (:meth:`SpatialPriorAnalysis.sample`): the position is sampled in a tangent-plane patch
  around the posterior mode with the map interpolated smoothly
  (:class:`~bayesnu.sky.patch.TangentPlanePrior`), jointly with :math:`n_s` and
  :math:`\gamma`.

Only the pixels of the prior's ``region_level`` credible region (default 99.9%) are
scanned: elsewhere the prior term is below :math:`2\ln(\pi_p/\max\pi)` of the region's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import healpy as hp
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayesnu.analyses.point_source import PointSourceAnalysis, PSPriors, Source
from bayesnu.analyses.ps_inputs import ResponseSettings, SeasonModel, season_models
from bayesnu.analyses.ps_trials import TAU, compact_events
from bayesnu.data.ps_release import PSRelease, Season
from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw
from bayesnu.frequentist.trials import TrialResults, run_trials
from bayesnu.irf.injection import build_tables, injection_capacity, sample_signal
from bayesnu.irf.spatial import haversine, rayleigh_pdf_haversine
from bayesnu.likelihood.pointsource import PSInputs
from bayesnu.likelihood.ps_fit import fit_ns_gamma_nodes, log_marginal
from bayesnu.sky.maps import SkyMap, credible_area_deg2, credible_levels, credible_region_mask, prior_ts_term
from bayesnu.sky.patch import TangentPlanePrior
from bayesnu.sky.scan import RingBand, ScanSettings, SkyScan, SkyScanner, band_energy_ratios, count_selected

__all__ = ["RegionTrialInputs", "SpatialPriorAnalysis", "SpatialPriorResult", "region_trial"]

#: Floor of the prior term (a pixel with zero prior gets this instead of -inf).
PRIOR_TERM_FLOOR = -1e3


@dataclass(frozen=True)
class RegionTrialInputs:
    """Everything a spatial-prior trial needs (a JAX pytree; rings stacked on the first axis).

    ``R`` rings of the prior region, ``M`` band events per ring (padded), ``P`` region
    pixels, ``T`` distinct injection tables, ``N`` events in all seasons.
    """

    bands: RingBand  # every leaf with a leading R axis
    er: jax.Array  # (R, M, K) energy ratios of the band events at each ring
    pix_ring: jax.Array  # (P,) ring of each pixel
    pix_ra: jax.Array  # (P,) [rad]
    pix_dec: jax.Array  # (P,) [rad]
    prior_term: jax.Array  # (P,) 2 ln(p / p_max), floored
    draw_logp: jax.Array  # (P,) ln prior probability of each pixel (true positions of signal trials)
    ev_ra: jax.Array  # (N,) data right ascensions [rad]
    n_total: jax.Array  # (S,)
    injection: Any  # InjectionTables stacked over T, or None
    pix_table: jax.Array  # (P,) injection table of each pixel
    spatial_bkg: tuple
    energy_bkg: tuple
    settings: ScanSettings
    n_inj_max: int
    e0_gev: float
    scramble: bool = True
    pixel_batch: int = 256


jax.tree_util.register_dataclass(
    RegionTrialInputs,
    data_fields=["bands", "er", "pix_ring", "pix_ra", "pix_dec", "prior_term", "draw_logp", "ev_ra",
                 "n_total", "injection", "pix_table", "spatial_bkg", "energy_bkg"],
    meta_fields=["settings", "n_inj_max", "e0_gev", "scramble", "pixel_batch"],
)  # fmt: skip


def _reach_jax(sigma: jax.Array, bsp: jax.Array, er_max: jax.Array) -> jax.Array:
    """:func:`bayesnu.analyses.ps_trials.reach_angle` in JAX."""
    arg = er_max / (TAU * bsp * 2.0 * jnp.pi * sigma**2)
    psi = jnp.sqrt(2.0 * jnp.log(jnp.maximum(arg, 1.0))) * sigma
    return jnp.minimum(psi * 1.02 + 1e-9, jnp.pi)


def _injected(data: RegionTrialInputs, key: jax.Array, q: jax.Array, ns: jax.Array, gamma: jax.Array):
    """Signal events from a source at region pixel ``q`` (columns without energy ratios)."""
    tables = jax.tree_util.tree_map(lambda a: a[data.pix_table[q]], data.injection)
    tables = replace(tables, src_ra_rad=data.pix_ra[q], src_dec_rad=data.pix_dec[q])
    inj = sample_signal(tables, PowerLaw(1.0, gamma, e0_gev=data.e0_gev), key, ns, n_max=data.n_inj_max)
    ra, dec = jnp.radians(inj.ra_deg), jnp.radians(inj.dec_deg)
    sin_dec = jnp.sin(dec)
    season = inj.season.astype(jnp.int32)
    bsp = jnp.ones_like(ra)
    b_e = jnp.ones_like(ra)
    for s in range(len(data.spatial_bkg)):
        here = season == s
        bsp = jnp.where(here, data.spatial_bkg[s].pdf(sin_dec), bsp)
        b_e = jnp.where(here, data.energy_bkg[s].pdf(inj.log10_energy, sin_dec), b_e)
    cols = {"ra": ra, "dec": dec, "sigma": jnp.radians(inj.ang_err_deg), "bsp": bsp,
            "log10_e": inj.log10_energy, "b_energy": b_e, "season": season}  # fmt: skip
    return cols, inj.valid


def region_trial(key: jax.Array, data: RegionTrialInputs, ns_inj: jax.Array, gamma_inj: jax.Array) -> dict:
    """One spatial-prior pseudo-experiment: scrambled RA (+ signal from a prior-drawn pixel), region scan.

    Returns
    -------
    dict
        ``ts`` = max(0, max over pixels of TS + prior term), ``ts_raw`` (the same before
        clipping), ``ts_pixel`` (TS without the prior term at the chosen pixel), ``ns``,
        ``gamma``, ``pixel`` (index into the region pixels), ``true_pixel`` (-1 without
        signal), ``true_level`` (posterior probability of the pixels more probable than
        the true one: the true position lies in the smallest region holding ``L`` iff
        ``true_level < L``; NaN without signal), ``posterior_mode``, ``n_inj``,
        ``converged``, ``overflow``.
    """
    k_ra, k_pos, k_inj = jax.random.split(key, 3)
    st = data.settings
    n_ev = data.ev_ra.shape[0]
    ra_all = jax.random.uniform(k_ra, (n_ev,), maxval=2 * jnp.pi) if data.scramble else data.ev_ra
    bands = data.bands
    ra_band = ra_all[bands.index]  # (R, M)
    n_total = data.n_total
    inject = data.injection is not None
    if inject:
        q = jax.random.categorical(k_pos, data.draw_logp)
        inj, inj_valid = _injected(data, k_inj, q, ns_inj, gamma_inj)
        n_total = n_total + jnp.zeros_like(n_total).at[inj["season"]].add(jnp.where(inj_valid, 1.0, 0.0))
        # Energy ratios of the injected events at every ring's declination: (R, n_inj, K).
        er_inj_rings = jax.vmap(
            lambda ring: band_energy_ratios(
                replace(
                    ring,
                    log10_e=inj["log10_e"],
                    b_energy=inj["b_energy"],
                    season=inj["season"],
                    valid=inj_valid,
                )
            )
        )(bands)
    else:
        q = jnp.asarray(-1)

    def one(p: jax.Array) -> dict[str, jax.Array]:
        r = data.pix_ring[p]
        ra_p, dec_p = data.pix_ra[p], data.pix_dec[p]
        ra_b = ra_band[r]
        d = jnp.abs(ra_b - ra_p)
        d = jnp.minimum(d, 2 * jnp.pi - d)
        sel = bands.valid[r] & (d < bands.dra[r])
        cols = {"ra": ra_b, "dec": bands.dec[r], "sigma": bands.sigma[r], "bsp": bands.bkg_spatial[r],
                "er": data.er[r], "season": bands.season[r]}  # fmt: skip
        if inject:
            er_inj = er_inj_rings[r]
            h = haversine(inj["ra"], inj["dec"], ra_p, dec_p)
            r_sp = rayleigh_pdf_haversine(h, inj["sigma"]) / inj["bsp"]
            near = inj_valid & (r_sp * jnp.max(er_inj, axis=1) > TAU)
            cols = {"ra": jnp.concatenate([cols["ra"], inj["ra"]]),
                    "dec": jnp.concatenate([cols["dec"], inj["dec"]]),
                    "sigma": jnp.concatenate([cols["sigma"], inj["sigma"]]),
                    "bsp": jnp.concatenate([cols["bsp"], inj["bsp"]]),
                    "er": jnp.concatenate([cols["er"], er_inj]),
                    "season": jnp.concatenate([cols["season"], inj["season"]])}  # fmt: skip
            sel = jnp.concatenate([sel, near])
        events, n_sel, count = compact_events(cols, sel, st.buffer, n_total.shape[0])
        inputs = PSInputs(
            events=events, n_total=n_total, n_outside=n_total - n_sel, log_yield=bands.log_yield[r],
            src_ra=ra_p, src_dec=dec_p, gamma0=st.gamma0, dgamma=st.dgamma, interp=st.interp,
            yield_g0=st.yield_g0, yield_dg=st.yield_dg, n_total_min=st.n_total_min,
        )  # fmt: skip
        fit, nodes = fit_ns_gamma_nodes(inputs, ns_max=st.ns_max, gamma_min=st.gamma_min,
                                        gamma_max=st.gamma_max, gamma_fixed=st.gamma_fixed,
                                        node_step=st.node_step)  # fmt: skip
        return {"ts": fit.ts, "ns": fit.ns, "gamma": fit.gamma, "converged": fit.converged,
                "log_bayes": log_marginal(nodes, st.ns_max, st.gamma_min, st.gamma_max),
                "overflow": count > st.buffer}  # fmt: skip

    n_pix = data.pix_ra.shape[0]
    res = jax.lax.map(one, jnp.arange(n_pix), batch_size=min(data.pixel_batch, n_pix))
    ts_prior = res["ts"] + data.prior_term
    k = jnp.argmax(ts_prior)
    # Posterior over the source pixel; the probability of the pixels more probable than the
    # true one (the true pixel is inside the smallest region holding L iff this is < L).
    post = jax.nn.softmax(data.draw_logp + res["log_bayes"])
    above = jnp.sum(jnp.where(post > post[jnp.maximum(q, 0)], post, 0.0))
    return {
        "ts": jnp.maximum(ts_prior[k], 0.0),
        "ts_raw": ts_prior[k],
        "ts_pixel": res["ts"][k],
        "ns": res["ns"][k],
        "gamma": res["gamma"][k],
        "pixel": k,
        "true_pixel": q,
        "true_level": jnp.where(q >= 0, above, jnp.nan),
        "posterior_mode": jnp.argmax(post),
        "n_inj": jnp.sum(inj_valid) if inject else jnp.asarray(0),
        "converged": res["converged"][k],
        "overflow": jnp.any(res["overflow"]),
    }


@dataclass
class SpatialPriorResult:
    """The spatial-prior result on data (see :meth:`SpatialPriorAnalysis.unblind`).

    Attributes
    ----------
    scan
        The region scan (per-pixel TS, ns, gamma, log marginal likelihood ratio).
    prior_term
        Per scanned pixel, :math:`2\\ln(\\pi_p/\\max\\pi)`.
    posterior
        Posterior probability map of the source pixel (full sky, RING).
    log_bayes_factor
        :math:`\\ln\\sum_p \\pi_p B_p` (a source in the prior region vs background).
    """

    scan: SkyScan
    prior_term: np.ndarray
    posterior: SkyMap
    log_bayes_factor: float

    @property
    def ts_with_prior(self) -> np.ndarray:
        """Per scanned pixel, TS + prior term."""
        return self.scan.ts + self.prior_term

    def summary(self, levels: Sequence[float] = (0.5, 0.9)) -> dict[str, Any]:
        """JSON-friendly summary: hottest pixel with the prior term, TS, posterior areas."""
        tsp = self.ts_with_prior
        h = self.scan.hottest(tsp)
        post = self.posterior.values
        k = int(np.argmax(post))
        ra_m, dec_m = hp.pix2ang(self.posterior.nside, k, lonlat=True)
        return {
            "ts": max(0.0, h["ts_ranked"]),
            "ts_raw": h["ts_ranked"],
            "hottest_ra": h["ra_deg"],
            "hottest_dec": h["dec_deg"],
            "ts_pixel": h["ts"],
            "ns": h["ns"],
            "gamma": h["gamma"],
            "n_pixels": self.scan.n_pixels,
            "log_bayes_factor": self.log_bayes_factor,
            "posterior_mode_ra": float(ra_m),
            "posterior_mode_dec": float(dec_m),
            **{f"area_{round(100 * lv)}_deg2": credible_area_deg2(post, lv) for lv in levels},
            "wall_s": self.scan.wall_s,
            "compile_s": self.scan.compile_s,
        }


class SpatialPriorAnalysis:
    """Point-source analysis with a HEALPix map as the prior on the source position.

    Parameters
    ----------
    release
        Loaded release, list of seasons, or pre-built season models.
    prior
        Prior map (:class:`~bayesnu.sky.maps.SkyMap`; any resolution, made a normalised
        probability map at ``nside``).
    nside
        Resolution of the scan (default: the prior's, capped at 128).
    region_level
        Scan the pixels of this credible region of the prior (default 0.999).
    ns_max, gamma_bounds, settings, node_step
        As for the point-source analysis.
    """

    def __init__(
        self,
        release: PSRelease | Sequence[Season] | Sequence[SeasonModel],
        prior: SkyMap,
        *,
        nside: int | None = None,
        region_level: float = 0.999,
        ns_max: float = 1000.0,
        gamma_bounds: tuple[float, float] = (1.0, 4.0),
        settings: ResponseSettings | None = None,
        node_step: int = 2,
    ) -> None:
        items = list(release.seasons.values()) if isinstance(release, PSRelease) else list(release)
        if items and isinstance(items[0], SeasonModel):
            self.models: list[SeasonModel] = items  # type: ignore[assignment]
        else:
            self.models = season_models(items, settings)  # type: ignore[arg-type]
        if prior.kind == "value":
            raise ConfigError("the prior must be a probability or density map, not kind='value'")
        nside = nside or min(prior.nside, 128)
        if not hp.isnsideok(nside, nest=True):
            raise ConfigError(f"nside={nside} is not a valid HEALPix resolution")
        self.prior = prior.to_probability().ud_grade(nside).normalised() if prior.nside != nside else (
            prior.to_probability().normalised())  # fmt: skip
        self.nside = nside
        if not 0 < region_level <= 1:
            raise ConfigError(f"region_level must be in (0, 1], got {region_level}")
        self.region_level = float(region_level)
        p = self.prior.values
        mask = credible_region_mask(p, region_level) & (p > 0)
        self.pixels = np.flatnonzero(mask)
        self.scanner = SkyScanner(self.models, ns_max=ns_max, gamma_bounds=gamma_bounds, node_step=node_step)
        with np.errstate(divide="ignore"):
            term = prior_ts_term(self.prior)
        self.prior_term_all = np.maximum(term, PRIOR_TERM_FLOOR)
        self._trial_inputs: dict[tuple, RegionTrialInputs] = {}

    # ------------------------------------------------------------------ data
    @property
    def e0_gev(self) -> float:
        """Reference energy of the flux normalisation [GeV]."""
        return self.models[0].settings.e0_gev

    def scan(self, gamma_fixed: float | None = None, ra_rad: np.ndarray | None = None) -> SkyScan:
        """Scan the prior region (see :meth:`bayesnu.sky.scan.SkyScanner.scan`)."""
        return self.scanner.scan(self.nside, pixels=self.pixels, gamma_fixed=gamma_fixed, ra_rad=ra_rad)

    def result(self, scan: SkyScan) -> SpatialPriorResult:
        """Prior term, posterior map and Bayes factor of a region scan."""
        p = self.prior.values[scan.pixels]
        log_w = np.log(p) + scan.log_bayes
        lbf = float(np.logaddexp.reduce(log_w))
        post = np.zeros(hp.nside2npix(self.nside))
        post[scan.pixels] = np.exp(log_w - lbf)
        return SpatialPriorResult(
            scan=scan,
            prior_term=self.prior_term_all[scan.pixels],
            posterior=SkyMap(
                post / post.sum(), kind="probability", meta={"what": "posterior of the source pixel"}
            ),
            log_bayes_factor=lbf,
        )

    def unblind(self, gamma_fixed: float | None = None) -> SpatialPriorResult:
        """Scan the prior region on the data; TS with the prior term and the posterior map."""
        return self.result(self.scan(gamma_fixed=gamma_fixed))

    # ------------------------------------------------------------------ NUTS
    def sample(
        self,
        result: SpatialPriorResult | None = None,
        *,
        level: float = 0.99,
        chains: int = 4,
        draws: int = 1000,
        warmup: int = 1000,
        seed: int = 0,
        ns_prior_max: float | None = None,
        progress_bar: bool | None = None,
    ) -> xr.DataTree:
        """Refine the posterior continuously with NUTS around its dominant mode.

        The position is sampled on a tangent-plane patch centred on the posterior's most
        probable pixel that covers its ``level`` credible region (plus two pixels), with
        the prior map interpolated smoothly; ns (flat on [0, ns_prior_max]) and gamma
        (flat) are sampled jointly. Events within the patch radius + 10 deg enter the
        likelihood; the signal energy PDF is the one of the patch centre's declination
        (a good approximation over a few degrees), the detector yield follows the position.

        Returns
        -------
        xarray.DataTree
            ArviZ posterior with ``ra_deg``, ``dec_deg``, ``ns``, ``gamma``, ``flux_norm``, ...
        """
        result = result or self.unblind()
        post = result.posterior.values
        k = int(np.argmax(post))
        ra_c, dec_c = hp.pix2ang(self.nside, k, lonlat=True)
        region = np.flatnonzero(credible_levels(post) <= level)
        ra_r, dec_r = hp.pix2ang(self.nside, region, lonlat=True)
        dist = np.degrees(
            hp.rotator.angdist([ra_c, dec_c], np.vstack([ra_r, dec_r]), lonlat=True)
        ) if len(region) else np.zeros(1)  # fmt: skip
        pix_deg = math.degrees(hp.nside2resol(self.nside))
        radius = float(min(max(np.max(dist) + 2 * pix_deg, 3 * pix_deg), 30.0))
        patch = TangentPlanePrior.from_skymap(self.prior, float(ra_c), float(dec_c), radius)
        ns_hi = ns_prior_max or self.scanner.ns_max
        from bayesnu.analyses.priors import Prior

        ana = PointSourceAnalysis(
            self.models,
            Source(float(ra_c) % 360.0, float(np.clip(dec_c, -90, 90)), name="spatial prior mode"),
            selection_deg=min(radius + 10.0, 180.0),
            ns_max=self.scanner.ns_max,
            gamma_bounds=self.scanner.gamma_bounds,
            priors=PSPriors(
                gamma=Prior("uniform", low=self.scanner.gamma_bounds[0], high=self.scanner.gamma_bounds[1]),
                ns=Prior("uniform", low=0.0, high=ns_hi),
                position_map=patch,
            ),
        )
        dt = ana.sample(chains=chains, draws=draws, warmup=warmup, seed=seed, progress_bar=progress_bar)
        dt.attrs.update({"analysis": "spatial_prior", "patch_radius_deg": radius, "nside": self.nside,
                         "log_bayes_factor": result.log_bayes_factor})  # fmt: skip
        return dt

    # ------------------------------------------------------------------ trials
    def trial_inputs(self, *, inject: bool, gamma_fixed: float | None = None, n_inj_max: int = 256,
                     scramble: bool = True) -> RegionTrialInputs:  # fmt: skip
        """Stacked bands of the prior region for :func:`region_trial` (cached)."""
        key = (inject, gamma_fixed, n_inj_max, scramble)
        if key in self._trial_inputs:
            return self._trial_inputs[key]
        sc = self.scanner
        th, ph = hp.pix2ang(self.nside, self.pixels)
        ring_dec = np.round(np.pi / 2 - th, 12)
        rings, pix_ring = np.unique(ring_dec, return_inverse=True)
        psi = sc.prepare(rings)
        sizes = [int(np.sum(np.abs(sc.events["dec"] - d) < psi)) for d in rings]
        m_pad = int(256 * math.ceil(max(sizes) / 256))
        bands = [sc.band(float(d), psi, pad_to=m_pad)[0] for d in rings]
        er_fn = jax.jit(band_energy_ratios)
        er = np.stack([np.asarray(er_fn(jax.tree_util.tree_map(jnp.asarray, b))) for b in bands])
        stacked = jax.tree_util.tree_map(lambda *a: jnp.asarray(np.stack(a)), *bands)
        # Buffer: the largest count over pixels. Scrambled: expected + 7 sigma per ring.
        if scramble:
            worst = 0.0
            for b in bands:
                pr = np.where(b.valid, b.dra / np.pi, 0.0)
                worst = max(worst, float(pr.sum() + 7 * math.sqrt(np.sum(pr * (1 - pr))) + 32))
            need = int(worst)
        else:
            ev_ra = jnp.asarray(sc.events["ra"])
            need = 0
            for i, b in enumerate(bands):
                pix_i = jnp.asarray(ph[pix_ring == i])
                need = max(need, int(count_selected(ev_ra, jax.tree_util.tree_map(jnp.asarray, b), pix_i)))
        buffer = int(64 * math.ceil((need + (n_inj_max if inject else 0)) / 64))
        injection, pix_table = None, np.zeros(len(self.pixels), dtype=np.int32)
        if inject:
            keys: dict[tuple[int, ...], int] = {}
            tables = []
            for i in range(len(self.pixels)):
                dec = 90.0 - math.degrees(th[i])
                kk = tuple(
                    (int(s.effective_area.dec_index(dec)), int(s.smearing.dec_index(dec)))  # type: ignore[union-attr]
                    for s in (m.season for m in self.models)
                )
                if kk not in keys:
                    keys[kk] = len(tables)
                    tables.append(build_tables([m.season for m in self.models], math.degrees(ph[i]), dec)[1])
                pix_table[i] = keys[kk]
            injection = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *tables)
        p = self.prior.values[self.pixels]
        data = RegionTrialInputs(
            bands=stacked,
            er=jnp.asarray(er),
            pix_ring=jnp.asarray(pix_ring.astype(np.int32)),
            pix_ra=jnp.asarray(ph),
            pix_dec=jnp.asarray(np.pi / 2 - th),
            prior_term=jnp.asarray(self.prior_term_all[self.pixels]),
            draw_logp=jnp.asarray(np.log(p / p.sum())),
            ev_ra=jnp.asarray(sc.events["ra"]),
            n_total=jnp.asarray(sc.n_total),
            injection=injection,
            pix_table=jnp.asarray(pix_table),
            spatial_bkg=tuple(m.spatial_bkg for m in self.models),
            energy_bkg=tuple(m.energy_bkg for m in self.models),
            settings=sc.scan_settings(buffer, gamma_fixed),
            n_inj_max=int(n_inj_max),
            e0_gev=self.e0_gev,
            scramble=scramble,
        )
        self._trial_inputs[key] = data
        return data

    def _run(
        self, data: RegionTrialInputs, n: int, seed: int, ns: float, gamma: float, **run: Any
    ) -> TrialResults:
        res = run_trials(
            _region_trial_fn,
            n,
            seed=seed,
            inputs=(data, jnp.asarray(float(ns)), jnp.asarray(float(gamma))),
            batch_size=run.pop("batch_size", 1),
            desc=run.pop("desc", "spatial-prior trials"),
            **run,
        )
        if np.any(res.columns["overflow"]):
            raise RuntimeError(
                f"{int(np.sum(res.columns['overflow']))} trials overflowed the event buffer; "
                "increase n_inj_max or report this"
            )
        return res

    def background_trials(self, n_trials: int, *, seed: int = 0, gamma_fixed: float | None = None,
                          **run: Any) -> TrialResults:  # fmt: skip
        """Background trials: RA scrambled, the prior region rescanned; TS with the prior term.

        Extra keywords go to :func:`~bayesnu.frequentist.trials.run_trials` (``backend``,
        ``scheduler``, ``batch_size``, ``progress``).
        """
        data = self.trial_inputs(inject=False, gamma_fixed=gamma_fixed)
        return self._run(data, n_trials, seed, 0.0, 2.0, desc="spatial-prior background", **run)

    def signal_trials(self, n_trials: int, *, ns: float, gamma: float = 2.0, seed: int = 0,
                      gamma_fixed: float | None = None, n_inj_max: int | None = None,
                      **run: Any) -> TrialResults:  # fmt: skip
        """Signal trials: the true position drawn from the prior map (pixel centres) for each trial.

        ``ns`` is the mean number of injected events (Poisson-fluctuated) with spectral
        index ``gamma``; ``n_inj_max`` (static buffer of injected events) defaults to the
        mean plus seven standard deviations (an overflow raises).
        """
        if n_inj_max is None:
            n_inj_max = injection_capacity(ns)
        data = self.trial_inputs(inject=True, gamma_fixed=gamma_fixed, n_inj_max=n_inj_max)
        return self._run(data, n_trials, seed, ns, gamma, desc="spatial-prior signal", **run)

    def flux_per_ns(self, gamma: float) -> float:
        """Phi0 at E0 [GeV^-1 cm^-2 s^-1] per injected event, averaged over the prior (csky's to_E2dNdE).

        The expected number of events per unit flux depends on declination; for a source
        drawn from the prior it is :math:`\\bar Y = \\sum_p \\pi_p Y(\\delta_p)`, and a mean
        ``ns`` corresponds to :math:`\\Phi_0 = n_s/\\bar Y`.
        """
        th, _ = hp.pix2ang(self.nside, self.pixels)
        decs = np.pi / 2 - th
        p = self.prior.values[self.pixels]
        p = p / p.sum()
        ys = []
        for d in np.unique(np.round(decs, 12)):
            g = np.asarray(self.models[0].yield_gamma_grid)
            tot = sum(np.exp(np.interp(gamma, g, m.log_yield(float(d)))) for m in self.models)
            ys.append((d, tot))
        ymap = dict(ys)
        ybar = float(np.sum(p * np.array([ymap[d] for d in np.round(decs, 12)])))
        return 1.0 / ybar


def _region_trial_fn(key: jax.Array, data: RegionTrialInputs, ns: jax.Array, gamma: jax.Array) -> dict:
    return region_trial(key, data, ns, gamma)
