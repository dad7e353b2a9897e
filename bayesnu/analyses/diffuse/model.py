r"""Flux components, MC weights and the likelihood of the HESE-style diffuse fit (pure JAX).

Per MC event :math:`i` with true energy :math:`E_i`, livetime :math:`T` and
``weightOverFluxOverLivetime`` :math:`a_i`, the expected number of events is the sum
of four components (the release's weighter, parameter names as in
:mod:`~bayesnu.analyses.diffuse.params`):

.. math::

   w^\mathrm{astro}_i &= \tfrac{1}{6}\Phi_\mathrm{astro}\,10^{-18}
        (E_i / 100\,\mathrm{TeV})^{-\gamma_\mathrm{astro}}\, D^\mathrm{astro}_i\, a_i T \\
   w^\mathrm{conv}_i &= N_\mathrm{conv}\,(E_i / 2020\,\mathrm{GeV})^{-\Delta\gamma_\mathrm{CR}}
        (\phi^\pi_i + R_{K/\pi}\,\phi^K_i)\, r_i\, V^\mathrm{conv}_i D^\mathrm{conv}_i\, a_i T \\
   w^\mathrm{prompt}_i &= N_\mathrm{prompt}\,(E_i / 7887\,\mathrm{GeV})^{-\Delta\gamma_\mathrm{CR}}
        \phi^\mathrm{prompt}_i\, r_i\, V^\mathrm{prompt}_i D^\mathrm{prompt}_i\, a_i T \\
   w^\mu_i &= N_\mu\, m_i T

with :math:`\Phi_\mathrm{astro}` = ``astro_norm`` (six-neutrino flux at 100 TeV in
1e-18 GeV^-1 cm^-2 s^-1 sr^-1, applied to every neutrino species),
:math:`r_i` = ``nunubar_ratio`` for neutrinos and ``2 - nunubar_ratio`` for
antineutrinos, :math:`V` the self-veto passing fractions, :math:`m_i` the
``muonWeightOverLivetime`` and :math:`D` the detector-systematics factors of
:mod:`~bayesnu.analyses.diffuse.detector` (1 when those parameters sit at nominal).
Bin sums of :math:`w` and :math:`w^2` enter the Poisson or SAY likelihood of
:mod:`bayesnu.likelihood.binned`; the release's log-prior of
:mod:`~bayesnu.analyses.diffuse.params` is added to form the log-density whose negative
is the release's ``-LLH``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesnu.analyses.diffuse.detector import DetectorModel, log10_corrections
from bayesnu.analyses.diffuse.params import PARAMETER_NAMES, Prior, log_prior
from bayesnu.likelihood.binned import bin_sums, binned_loglike

#: Pivot energies [GeV] of the astrophysical, conventional and prompt power laws.
ASTRO_PIVOT_GEV = 1.0e5
CONV_PIVOT_GEV = 2020.0
PROMPT_PIVOT_GEV = 7887.0
#: Unit of astro_norm: six-neutrino flux per 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, divided over 6 species.
ASTRO_UNIT_PER_SPECIES = 1.0e-18 / 6.0
#: astro_norm -> per-flavour (nu + nubar) flux at 100 TeV [GeV^-1 cm^-2 s^-1 sr^-1].
ASTRO_UNIT_PER_FLAVOUR = 1.0e-18 / 3.0

COMPONENT_NAMES: tuple[str, ...] = ("astro", "conv", "prompt", "muon")

_LN10 = math.log(10.0)
_LOG_CONV_OVER_PROMPT = math.log(CONV_PIVOT_GEV / PROMPT_PIVOT_GEV)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DiffuseInputs:
    """Everything the likelihood needs, as arrays sorted by analysis bin (a JAX pytree).

    Attributes
    ----------
    bin_index
        Analysis bin of each MC event (sorted).
    log_e_astro, log_e_conv
        :math:`\\ln(E/100\\,\\mathrm{TeV})` and :math:`\\ln(E/2020\\,\\mathrm{GeV})` of each event.
    astro_base
        :math:`10^{-18}/6\\; a_i T` [GeV sr cm^2 s per (GeV^-1 cm^-2 s^-1 sr^-1)].
    pion_base, kaon_base, prompt_base
        :math:`\\phi^\\pi V^\\mathrm{conv} a T`, :math:`\\phi^K V^\\mathrm{conv} a T`,
        :math:`\\phi^\\mathrm{prompt} V^\\mathrm{prompt} a T` (expected events at nominal).
    is_nu, is_nubar
        1.0 for (anti)particles (PDG code sign), else 0.0.
    muon_base
        :math:`m_i T` (expected muon events at nominal).
    counts
        Observed events per bin.
    has_mc
        Bins with at least one MC event.
    detector
        Detector-systematics terms (``None``: corrections fixed at 1).
    n_bins, likelihood, priors
        Static: number of bins, ``"say"`` or ``"poisson"``, and the priors as a tuple of
        ``(name, Prior)``.
    """

    bin_index: jax.Array
    log_e_astro: jax.Array
    log_e_conv: jax.Array
    astro_base: jax.Array
    pion_base: jax.Array
    kaon_base: jax.Array
    prompt_base: jax.Array
    is_nu: jax.Array
    is_nubar: jax.Array
    muon_base: jax.Array
    counts: jax.Array
    has_mc: jax.Array
    detector: DetectorModel | None
    n_bins: int = field(metadata=dict(static=True))
    likelihood: str = field(metadata=dict(static=True))
    priors: tuple[tuple[str, Prior], ...] = field(metadata=dict(static=True))


def component_weights(theta: dict[str, Any], inputs: DiffuseInputs) -> dict[str, jax.Array]:
    """Per-event expected events of each component (``astro``, ``conv``, ``prompt``, ``muon``)."""
    nu_fac = inputs.is_nu * theta["nunubar_ratio"] + inputs.is_nubar * (2.0 - theta["nunubar_ratio"])
    astro = theta["astro_norm"] * jnp.exp(-theta["astro_gamma"] * inputs.log_e_astro) * inputs.astro_base
    # one exponential serves both atmospheric pivots: (E/7887)^-d = (E/2020)^-d (2020/7887)^-d
    tilt = jnp.exp(-theta["cr_delta_gamma"] * inputs.log_e_conv) * nu_fac
    conv = theta["conv_norm"] * tilt * (inputs.pion_base + theta["kpi_ratio"] * inputs.kaon_base)
    prompt_scale = theta["prompt_norm"] * jnp.exp(-theta["cr_delta_gamma"] * _LOG_CONV_OVER_PROMPT)
    prompt = prompt_scale * tilt * inputs.prompt_base
    if inputs.detector is not None:
        factor = jnp.exp(_LN10 * log10_corrections(inputs.detector, theta))
        astro = astro * factor[0]
        conv = conv * factor[1]
        prompt = prompt * factor[2]
    muon = theta["muon_norm"] * inputs.muon_base
    return {"astro": astro, "conv": conv, "prompt": prompt, "muon": muon}


def _total(w: dict[str, jax.Array]) -> jax.Array:
    return (w["astro"] + w["conv"] + w["prompt"]) + w["muon"]


def event_weights(theta: dict[str, Any], inputs: DiffuseInputs) -> jax.Array:
    """Per-event total expected events."""
    return _total(component_weights(theta, inputs))


def _binned_loglike(w: jax.Array, inputs: DiffuseInputs) -> jax.Array:
    mu, s2 = bin_sums(w, inputs.bin_index, inputs.n_bins)
    return binned_loglike(inputs.counts, mu, s2, inputs.has_mc, inputs.likelihood)


def log_likelihood(theta: dict[str, Any], inputs: DiffuseInputs) -> jax.Array:
    """Binned log-likelihood (Poisson or SAY, ``inputs.likelihood``) without the prior."""
    return _binned_loglike(event_weights(theta, inputs), inputs)


def log_density(theta: dict[str, Any], inputs: DiffuseInputs) -> jax.Array:
    """Log-likelihood plus the release-convention log-prior (minus the release's ``-LLH``)."""
    priors = dict(inputs.priors)
    return log_likelihood(theta, inputs) + log_prior({n: theta[n] for n in PARAMETER_NAMES}, priors)


def _prior_distribution(p: Prior) -> dist.Distribution:
    lo, hi = p.lower, p.upper
    if p.gaussian:
        if math.isinf(lo) and math.isinf(hi):
            return dist.Normal(p.mean, p.sd)
        return dist.TruncatedNormal(
            p.mean, p.sd, low=None if math.isinf(lo) else lo, high=None if math.isinf(hi) else hi
        )
    if math.isfinite(lo) and math.isfinite(hi):
        return dist.Uniform(lo, hi)
    if math.isfinite(lo):
        support = constraints.greater_than(lo)
    elif math.isfinite(hi):
        support = constraints.less_than(hi)
    else:
        support = constraints.real
    return dist.ImproperUniform(support, (), ())


@jax.jit
def _loglike_and_totals(
    theta: dict[str, Any], inputs: DiffuseInputs
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """:func:`log_likelihood` and each component's expected events summed over all MC events.

    Jitted on its own so that NumPyro's repeated tracing of :func:`diffuse` (set-up,
    initialisation, sampling, deterministic sites) reuses one traced computation.
    """
    w = component_weights(theta, inputs)
    return _binned_loglike(_total(w), inputs), {comp: jnp.sum(w[comp]) for comp in COMPONENT_NAMES}


def diffuse(inputs: DiffuseInputs, fixed: dict[str, float] | None = None) -> None:
    r"""NumPyro model of the HESE-style diffuse fit.

    Every parameter not in ``fixed`` is drawn from its prior (Gaussian priors as
    truncated normals on their bounds, flat priors as uniform or improper-uniform
    densities on their bounds); the binned likelihood enters as a factor. Deterministic
    sites: expected events of each component summed over all bins (``n_astro``,
    ``n_conv``, ``n_prompt``, ``n_muon``), the per-flavour (nu + nubar) astrophysical
    flux at 100 TeV ``astro_flux_100tev_per_flavour`` [GeV^-1 cm^-2 s^-1 sr^-1]
    (``astro_norm / 3 * 1e-18``) and the per-flavour :math:`E^2\,dN/dE` at 100 TeV
    ``astro_e2dnde_100tev_per_flavour`` [GeV cm^-2 s^-1 sr^-1]
    (``astro_norm / 3 * 1e-18 * (1e5)^2``).
    """
    fixed = fixed or {}
    priors = dict(inputs.priors)
    theta = {}
    for name in PARAMETER_NAMES:
        if name in fixed:
            theta[name] = jnp.asarray(fixed[name], dtype=jnp.float64)
        else:
            theta[name] = numpyro.sample(name, _prior_distribution(priors[name]))
    loglike, n_expected = _loglike_and_totals(theta, inputs)
    numpyro.factor("loglike", loglike)
    for comp in COMPONENT_NAMES:
        numpyro.deterministic(f"n_{comp}", n_expected[comp])
    per_flavour = theta["astro_norm"] * ASTRO_UNIT_PER_FLAVOUR
    numpyro.deterministic("astro_flux_100tev_per_flavour", per_flavour)
    numpyro.deterministic("astro_e2dnde_100tev_per_flavour", per_flavour * ASTRO_PIVOT_GEV**2)


def build_inputs(
    *,
    bin_index: np.ndarray,
    counts: np.ndarray,
    mc_fields: dict[str, np.ndarray],
    livetime_s: float,
    n_bins: int,
    likelihood: str,
    priors: dict[str, Prior],
    detector: DetectorModel | None,
) -> DiffuseInputs:
    """Assemble :class:`DiffuseInputs` from MC fields already cut and sorted by ``bin_index``."""
    f = mc_fields
    e = np.asarray(f["primaryEnergy"], dtype=float)
    a_t = np.asarray(f["weightOverFluxOverLivetime"], dtype=float) * livetime_s
    ptype = np.asarray(f["primaryType"])
    has_mc = np.bincount(bin_index, minlength=n_bins) > 0
    j = jnp.asarray
    return DiffuseInputs(
        bin_index=j(bin_index.astype(np.int32)),
        log_e_astro=j(np.log(e / ASTRO_PIVOT_GEV)),
        log_e_conv=j(np.log(e / CONV_PIVOT_GEV)),
        astro_base=j(ASTRO_UNIT_PER_SPECIES * a_t),
        pion_base=j(f["pionFlux"] * f["conventionalSelfVetoCorrection"] * a_t),
        kaon_base=j(f["kaonFlux"] * f["conventionalSelfVetoCorrection"] * a_t),
        prompt_base=j(f["promptFlux"] * f["promptSelfVetoCorrection"] * a_t),
        is_nu=j((ptype > 0).astype(float)),
        is_nubar=j((ptype < 0).astype(float)),
        muon_base=j(np.asarray(f["muonWeightOverLivetime"], dtype=float) * livetime_s),
        counts=j(np.asarray(counts, dtype=float)),
        has_mc=j(has_mc),
        detector=detector,
        n_bins=int(n_bins),
        likelihood=likelihood,
        priors=tuple((n, priors[n]) for n in PARAMETER_NAMES),
    )
