r"""The unbinned point-source likelihood of the public-data analysis (pure JAX).

For seasons :math:`s` with :math:`N_s` events, of which :math:`N'_s` are kept by an
event selection around the source, and a signal strength :math:`n_s` shared across
seasons in proportion to the detector yield,
:math:`n_{s,s} = n_s\,f_s(\gamma, \delta)`, :math:`f_s = Y_s / \sum_t Y_t`:

.. math::

    \ln\Lambda(n_s, \gamma) = \sum_s\Big[\sum_{i\in s}^{N'_s}
        \ln\Big(1 + n_{s,s}\frac{R_i(\gamma) - 1}{N_s}\Big)
        + (N_s - N'_s)\ln\Big(1 - \frac{n_{s,s}}{N_s}\Big)\Big],
    \qquad R_i = \frac{S^\mathrm{sp}_i}{B^\mathrm{sp}_i}\,
                 \frac{S^E_i(\gamma)}{B^E_i},

the log-likelihood ratio against :math:`n_s = 0` (SkyLLH's ``ZeroSigH0`` form; a
per-event argument below 1e-3 is continued by SkyLLH's second-order expansion).
The test statistic is :math:`TS = 2\ln\Lambda(\hat n_s, \hat\gamma)` with
:math:`n_s \ge 0`.

The same ratios give the extended (Poisson) likelihood of the generative model with
expected signal :math:`n_{s,s}` and background :math:`n_{b,s}` events per season,

.. math::

    \ln\mathcal{L}_\mathrm{ext} - \ln\mathcal{L}_\mathrm{ext}^{(0)} = \sum_s\Big[
      -(n_{s,s} + n_{b,s} - N_s) + \sum_{i\in s}^{N'_s}
      \ln\Big(\frac{n_{b,s} + n_{s,s} R_i}{N_s}\Big)
      + (N_s - N'_s)\ln\frac{n_{b,s}}{N_s}\Big],

which equals :math:`\ln\Lambda` at :math:`n_{b,s} = N_s - n_{s,s}` (the maximum over
the total rate), so the NumPyro model with a profiled background and the
frequentist TS share one function.

The energy ratio :math:`S^E/B^E` is tabulated per event on a uniform grid of
:math:`\gamma` and interpolated with C1 cubic Hermite polynomials (default) or with
SkyLLH's nearest-node parabola (``interp="parabola"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bayesnu.irf.interp import hermite_uniform, parabola_nearest
from bayesnu.irf.spatial import haversine, rayleigh_pdf_haversine

#: SkyLLH's threshold on 1 + alpha_i below which the per-event log is expanded.
ONE_PLUS_ALPHA = 1e-3


@dataclass(frozen=True)
class PSEvents:
    """Selected events of all seasons, stacked and padded to a static length.

    Attributes
    ----------
    ra, dec
        Reconstructed direction [rad].
    sigma
        Angular uncertainty (AngErr) [rad].
    bkg_spatial
        Background spatial PDF [1/sr] of each event.
    energy_ratio
        ``(M, K)`` signal-over-background energy PDF ratio on the gamma grid.
    season
        Season index of each event.
    valid
        False for padding entries.
    """

    ra: jax.Array
    dec: jax.Array
    sigma: jax.Array
    bkg_spatial: jax.Array
    energy_ratio: jax.Array
    season: jax.Array
    valid: jax.Array

    def __len__(self) -> int:
        return int(self.ra.shape[0])


jax.tree_util.register_dataclass(
    PSEvents,
    data_fields=["ra", "dec", "sigma", "bkg_spatial", "energy_ratio", "season", "valid"],
    meta_fields=[],
)


@dataclass(frozen=True)
class PSInputs:
    """Everything the point-source likelihood needs besides the fit parameters.

    Attributes
    ----------
    events
        Selected events (:class:`PSEvents`).
    n_total
        ``(S,)`` number of events per season, :math:`N_s`.
    n_outside
        ``(S,)`` events not selected, :math:`N_s - N'_s`.
    log_yield
        ``(S, K')`` ln of the detector yield per unit Phi0 at the source declination on
        the yield's gamma grid [events per GeV^-1 cm^-2 s^-1].
    src_ra, src_dec
        Source position [rad] used when the parameters do not give one.
    gamma0, dgamma
        Uniform gamma grid of the tables (metadata).
    interp
        ``"hermite"`` or ``"parabola"`` (metadata).
    n_total_min
        A lower bound of every season's event count (metadata; lets the fit skip the
        expansion branch that only ns close to N can reach). ``None``: unknown.
    yield_g0, yield_dg
        Uniform gamma grid of ``log_yield`` (metadata; default: the energy tables' grid).
        The yield is tabulated finer (exact spline values) and always interpolated
        with cubic Hermite.
    """

    events: PSEvents
    n_total: jax.Array
    n_outside: jax.Array
    log_yield: jax.Array
    src_ra: jax.Array
    src_dec: jax.Array
    gamma0: float
    dgamma: float
    interp: str = "hermite"
    yield_g0: float | None = None
    yield_dg: float | None = None
    n_total_min: float | None = None

    @property
    def n_seasons(self) -> int:
        """Number of seasons."""
        return int(self.n_total.shape[0])


jax.tree_util.register_dataclass(
    PSInputs,
    data_fields=["events", "n_total", "n_outside", "log_yield", "src_ra", "src_dec"],
    meta_fields=["gamma0", "dgamma", "interp", "yield_g0", "yield_dg", "n_total_min"],
)


def interp_gamma(inputs: PSInputs, table: jax.Array, gamma: jax.Array) -> jax.Array:
    """Interpolate a table on the inputs' gamma grid (Hermite or SkyLLH's parabola, per ``inputs.interp``)."""
    f = parabola_nearest if inputs.interp == "parabola" else hermite_uniform
    return f(table, inputs.gamma0, inputs.dgamma, gamma)


def log_yields(inputs: PSInputs, gamma: jax.Array) -> jax.Array:
    """ln of every season's detector yield per unit Phi0 at ``gamma``, shape ``(S,)``."""
    g0 = inputs.gamma0 if inputs.yield_g0 is None else inputs.yield_g0
    dg = inputs.dgamma if inputs.yield_dg is None else inputs.yield_dg
    return hermite_uniform(inputs.log_yield, g0, dg, gamma)


def season_fractions(inputs: PSInputs, gamma: jax.Array) -> jax.Array:
    """Share of the signal per season, :math:`f_s = Y_s/\\sum_t Y_t`, shape ``(S,)``."""
    return jax.nn.softmax(log_yields(inputs, gamma))


def log_yield_total(inputs: PSInputs, gamma: jax.Array) -> jax.Array:
    """ln of the summed yield per unit Phi0 at ``gamma``."""
    return jax.nn.logsumexp(log_yields(inputs, gamma))


def event_ratios_spatial(
    inputs: PSInputs, ra: jax.Array | None = None, dec: jax.Array | None = None
) -> jax.Array:
    """Per-event spatial signal-over-background ratio :math:`S^\\mathrm{sp}_i/B^\\mathrm{sp}_i`."""
    ev = inputs.events
    ra = inputs.src_ra if ra is None else ra
    dec = inputs.src_dec if dec is None else dec
    return rayleigh_pdf_haversine(haversine(ev.ra, ev.dec, ra, dec), ev.sigma) / ev.bkg_spatial


def event_ratios(
    inputs: PSInputs, gamma: jax.Array, ra: jax.Array | None = None, dec: jax.Array | None = None
) -> jax.Array:
    """Per-event signal-over-background ratio :math:`R_i(\\gamma)`; zero for padding."""
    ev = inputs.events
    r_sp = event_ratios_spatial(inputs, ra, dec)
    r_e = interp_gamma(inputs, ev.energy_ratio, gamma)
    return jnp.where(ev.valid, r_sp * r_e, 0.0)


def _log1p_alpha(alpha: jax.Array) -> jax.Array:
    """ln(1 + alpha) continued below 1 + alpha = 1e-3 by SkyLLH's second-order expansion."""
    a0 = ONE_PLUS_ALPHA - 1.0
    stable = alpha > a0
    safe = jnp.where(stable, alpha, 0.0)
    t = (alpha - a0) / ONE_PLUS_ALPHA
    return jnp.where(stable, jnp.log1p(safe), jnp.log1p(a0) + t - 0.5 * t * t)


def log_lambda_from_ratios(inputs: PSInputs, ns: jax.Array, frac: jax.Array, ratios: jax.Array) -> jax.Array:
    """ln Lambda for signal ``ns`` split by ``frac`` (S,), given per-event ratios."""
    ev = inputs.events
    ns_s = ns * frac
    n_tot = inputs.n_total
    alpha = ns_s[ev.season] * (ratios - 1.0) / n_tot[ev.season]
    per_event = jnp.where(ev.valid, _log1p_alpha(alpha), 0.0)
    outside = inputs.n_outside * _log1p_alpha(-ns_s / n_tot)
    return jnp.sum(per_event) + jnp.sum(outside)


def log_lambda(params: dict[str, jax.Array], inputs: PSInputs) -> jax.Array:
    """Log-likelihood ratio :math:`\\ln\\Lambda` (see module doc).

    Parameters
    ----------
    params
        ``ns`` (total expected signal events) and ``gamma``; optionally ``ra`` and
        ``dec`` [rad] of the source (default: the inputs' source position).
    inputs
        :class:`PSInputs`.
    """
    gamma = params["gamma"]
    ratios = event_ratios(inputs, gamma, params.get("ra"), params.get("dec"))
    return log_lambda_from_ratios(inputs, params["ns"], season_fractions(inputs, gamma), ratios)


def log_extended(
    ns_season: jax.Array,
    nb_season: jax.Array,
    gamma: jax.Array,
    inputs: PSInputs,
    ra: jax.Array | None = None,
    dec: jax.Array | None = None,
) -> jax.Array:
    """Extended likelihood relative to the background-only hypothesis at the observed counts.

    Parameters
    ----------
    ns_season, nb_season
        ``(S,)`` expected signal and background events per season.
    gamma
        Spectral index.
    inputs
        :class:`PSInputs`.
    ra, dec
        Source position [rad] (default: the inputs').
    """
    ev = inputs.events
    ratios = event_ratios(inputs, gamma, ra, dec)
    n_tot = inputs.n_total
    arg = (nb_season[ev.season] + ns_season[ev.season] * ratios) / n_tot[ev.season]
    per_event = jnp.where(ev.valid, jnp.log(jnp.where(ev.valid, arg, 1.0)), 0.0)
    outside = inputs.n_outside * jnp.log(nb_season / n_tot)
    return -jnp.sum(ns_season + nb_season - n_tot) + jnp.sum(per_event) + jnp.sum(outside)


def ts_from_log_lambda(log_lambda_max: jax.Array, ns_hat: jax.Array) -> jax.Array:
    """:math:`TS = 2\\,\\mathrm{sign}(\\hat n_s)\\ln\\Lambda`, as SkyLLH's Wilks test statistic."""
    return 2.0 * jnp.sign(ns_hat) * log_lambda_max
