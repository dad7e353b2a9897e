"""A parametric simulator of HESE-style Monte Carlo in the release's exact schema.

**This is not IceCube's Monte Carlo.** The HESE 7.5-year release ships MC files
produced with IceCube's full detector simulation; they are not available in every
environment, so bayesnu simulates MC with the same fields, units and meaning from the
documented parametric model below. It is the embedded default of the diffuse model
card, the notebook and the tests; fits of the real 102 events with it are *not* the
published HESE result (only a demonstration of the machinery).

Model (every number is a keyword of :class:`HESESimulationConfig`):

Generation
    ``n_neutrino`` events split equally over the six neutrino types
    (PDG +-12, +-14, +-16), true energy from :math:`E^{-g}` on
    ``[e_min_gev, e_max_gev]``, isotropic in :math:`\\cos\\theta` on [-1, 1].
Interaction
    Channel CC / NC / GR drawn with probability proportional to its cross-section.
    Cross-sections per nucleon are power laws
    :math:`\\sigma = \\sigma_{100}\\,(E/100\\,\\mathrm{TeV})^{p}` (CC and NC, neutrino
    and antineutrino), and the Glashow resonance
    :math:`\\bar\\nu_e e^- \\to W^-` is a Breit-Wigner in :math:`s = 2 m_e E`
    with ``gr_peak_cm2`` at 6.3 PeV, on 10/18 electrons per nucleon.
Effective area and weights
    :math:`A(E, \\theta) = N_\\mathrm{target}\\,\\sigma_\\mathrm{tot}(E)\\,
    \\exp(-\\sigma_\\mathrm{tot}(E) N_A X(\\theta))` with the target count of
    ``fiducial_volume_cm3`` of ice and the column depth :math:`X` through a sphere of
    radius 6371 km seen from ``depth_m`` below its surface (ice above the horizon,
    rock of mean density ``2.6 + 3 |cos theta|`` g/cm^3 below; no tau regeneration).
    ``weightOverFluxOverLivetime`` is :math:`A / (p(E)\\,/\\,4\\pi) / N_\\mathrm{type}`
    [GeV sr cm^2], so :math:`\\sum_i w_i \\Phi(E_i) T` is the expected count.
Deposited energy and morphology
    Inelasticity :math:`y \\sim \\mathrm{Beta}(0.6, 1.8)` (antineutrinos
    Beta(0.6, 2.2)); hadronic showers deposit ``hadronic_light`` of their energy.
    :math:`\\nu_e` CC: cascade with the lepton energy plus the hadronic shower; NC:
    cascade with the hadronic shower; :math:`\\nu_\\mu` CC: track with the hadronic
    shower plus ``muon_deposit_fraction`` of the muon energy; :math:`\\nu_\\tau` CC:
    tau decay length :math:`L = 49\\,\\mathrm{m}\\,E_\\tau/\\mathrm{PeV}` (exponential), 17.4% of
    decays to muons (track), else a second cascade with a uniform 30-90% of the tau
    energy; a double cascade when :math:`L > 10` m with probability ``dc_efficiency``.
    GR: 67.6% hadronic (cascade, full energy), 10.7% :math:`e\\nu` (cascade, half),
    10.6% :math:`\\mu\\nu` (track), 11.1% :math:`\\tau\\nu` (cascade, half).
    Misidentification: ``cascade_to_dc`` of single cascades are reconstructed as
    double cascades with a log-uniform 10-30 m length, ``track_to_cascade`` of tracks as
    cascades.
Reconstruction
    Log-normal deposited-energy resolution (``sigma_log_e_cascade``/``_track``),
    von Mises-Fisher direction error (``sigma_dir_cascade_rad``/``_track_rad``),
    log-normal length resolution ``sigma_log_length``; ``recoLength`` is NaN except
    for double cascades.
Atmospheric neutrino fluxes
    A Gaisser-type two-term formula (pion and kaon terms) for :math:`\\nu_\\mu`,
    :math:`\\phi = A E^{-2.7} k(E) [1/(1 + 6 E c/\\epsilon_\\pi) + 0.38/(1 + 1.8 E c/\\epsilon_K)]`
    with :math:`c = \\max(|\\cos\\theta|, 0.05)`, :math:`\\epsilon_\\pi = 115` GeV,
    :math:`\\epsilon_K = 850` GeV and a knee factor :math:`k = (1 + E/150\\,\\mathrm{TeV})^{-0.4}`;
    :math:`\\nu_e` gets 1% of the pion and 10% of the kaon term, :math:`\\nu_\\tau` none;
    neutrino fractions ``nu_fraction_mu`` / ``nu_fraction_e``. Prompt: isotropic
    ``prompt_norm_100tev`` :math:`(E/100\\,\\mathrm{TeV})^{-2.7} k(E)` per flavour
    (:math:`\\nu+\\bar\\nu`, 10% for :math:`\\nu_\\tau`).
Self-veto
    Passing fraction 1 for up-going events, :math:`\\exp(-\\sqrt{E\\cos\\theta/E_v})` for
    down-going ones with ``veto_energy_conv_gev`` (4x larger for :math:`\\nu_e`) and
    ``veto_energy_prompt_gev``.
Atmospheric muons
    ``n_muon`` events, log-uniform energy on [1e4, 1e7] GeV, down-going
    :math:`\\cos\\theta \\in [0.1, 1]`, depositing 2-40% of their energy, 70% tracks and
    30% cascades; ``muonWeightOverLivetime`` is :math:`\\propto E^{-1.7}\\cos^{1.5}\\theta`
    per event, normalised so that the events above 60 TeV deposited add up to
    ``muon_events_above_60tev`` in ``livetime_s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bayesnu.data.hese import HESE_LIVETIME_S, HESEData, HESEMonteCarlo

N_AVOGADRO = 6.02214076e23
EARTH_RADIUS_M = 6.371e6
M_E_GEV = 0.51099895e-3
M_W_GEV = 80.379
GAMMA_W_GEV = 2.085


@dataclass(frozen=True)
class HESESimulationConfig:
    """Settings of :func:`simulate_hese_mc` (see the module docstring for the model)."""

    n_neutrino: int = 100_000
    n_muon: int = 2_000
    seed: int = 1
    e_min_gev: float = 3.0e4
    e_max_gev: float = 3.0e7
    generation_index: float = 1.5
    fiducial_volume_cm3: float = 2.9e14
    ice_density_g_cm3: float = 0.92
    depth_m: float = 1950.0
    sigma_cc_100tev_cm2: float = 2.0e-34
    sigma_cc_index: float = 0.40
    sigma_cc_bar_100tev_cm2: float = 1.6e-34
    sigma_cc_bar_index: float = 0.44
    nc_over_cc: float = 0.32
    gr_peak_cm2: float = 5.0e-31
    hadronic_light: float = 0.85
    muon_deposit_fraction: float = 0.15
    dc_efficiency: float = 0.8
    cascade_to_dc: float = 0.02
    track_to_cascade: float = 0.05
    sigma_log_e_cascade: float = 0.10
    sigma_log_e_track: float = 0.15
    sigma_dir_cascade_rad: float = 0.17
    sigma_dir_track_rad: float = 0.02
    sigma_dir_dc_rad: float = 0.15
    sigma_log_length: float = 0.25
    conv_norm_gev_cm2_s_sr: float = 0.018
    nu_fraction_mu: float = 0.56
    nu_fraction_e: float = 0.60
    prompt_norm_100tev: float = 1.0e-19
    veto_energy_conv_gev: float = 3.0e4
    veto_energy_prompt_gev: float = 5.0e4
    muon_events_above_60tev: float = 1.5
    livetime_s: float = HESE_LIVETIME_S

    def to_dict(self) -> dict:
        """The settings as a plain dict (stored with simulated files)."""
        return asdict(self)


def _sigma_cc(e: np.ndarray, anti: np.ndarray, c: HESESimulationConfig) -> np.ndarray:
    nu = c.sigma_cc_100tev_cm2 * (e / 1e5) ** c.sigma_cc_index
    nubar = c.sigma_cc_bar_100tev_cm2 * (e / 1e5) ** c.sigma_cc_bar_index
    return np.where(anti, nubar, nu)


def _sigma_gr_per_nucleon(e: np.ndarray, c: HESESimulationConfig) -> np.ndarray:
    s = 2.0 * M_E_GEV * e
    m2g2 = (M_W_GEV * GAMMA_W_GEV) ** 2
    return c.gr_peak_cm2 * m2g2 / ((s - M_W_GEV**2) ** 2 + m2g2) * (10.0 / 18.0)


def column_depth_g_cm2(cos_zenith: np.ndarray, depth_m: float, ice_density_g_cm3: float) -> np.ndarray:
    """Column depth [g/cm^2] from the surface of a 6371 km sphere to a point ``depth_m`` below it."""
    r = EARTH_RADIUS_M
    rd = r - depth_m
    path_m = np.sqrt((rd * cos_zenith) ** 2 + 2 * r * depth_m - depth_m**2) - rd * cos_zenith
    rho = np.where(cos_zenith >= 0, ice_density_g_cm3, 2.6 + 3.0 * np.abs(cos_zenith))
    return rho * path_m * 100.0


def _knee(e: np.ndarray) -> np.ndarray:
    return (1.0 + e / 1.5e5) ** -0.4


def conventional_terms(e_gev: np.ndarray, cos_zenith: np.ndarray, c: HESESimulationConfig) -> tuple:
    """Pion and kaon terms of the parametric conventional nu_mu + nu_mu-bar flux [GeV^-1 cm^-2 s^-1 sr^-1]."""
    cz = np.maximum(np.abs(cos_zenith), 0.05)
    base = c.conv_norm_gev_cm2_s_sr * e_gev**-2.7 * _knee(e_gev)
    pion = base / (1.0 + 6.0 * e_gev * cz / 115.0)
    kaon = base * 0.38 / (1.0 + 1.8 * e_gev * cz / 850.0)
    return pion, kaon


def _self_veto(e: np.ndarray, cos_zenith: np.ndarray, e_veto: np.ndarray | float) -> np.ndarray:
    down = np.clip(cos_zenith, 0.0, None)
    return np.where(cos_zenith > 0, np.exp(-np.sqrt(e * down / e_veto)), 1.0)


def _smear_direction(rng: np.random.Generator, zenith: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Reconstructed zenith [rad] from a von Mises-Fisher error of width ``sigma`` [rad]."""
    n = zenith.shape[0]
    kappa = 1.0 / sigma**2
    u = rng.uniform(size=n)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    w = np.clip(w, -1.0, 1.0)
    phi = rng.uniform(0, 2 * np.pi, size=n)
    sin_d = np.sqrt(1.0 - w**2)
    # rotate the offset (polar angle arccos w, azimuth phi) onto the true direction
    ct, st = np.cos(zenith), np.sin(zenith)
    z_new = ct * w - st * sin_d * np.cos(phi)
    return np.arccos(np.clip(z_new, -1.0, 1.0))


def simulate_hese_mc(config: HESESimulationConfig | None = None) -> HESEMonteCarlo:
    """Simulate HESE-schema MC (neutrinos and atmospheric muons); see the module docstring.

    Parameters
    ----------
    config
        Simulation settings (default :class:`HESESimulationConfig`); ``config.seed``
        fixes every random number.

    Returns
    -------
    HESEMonteCarlo
        ``n_neutrino + n_muon`` events with all fields of the release schema (no cut).
    """
    c = config or HESESimulationConfig()
    rng = np.random.default_rng(c.seed)
    n = c.n_neutrino
    types = np.array([12, -12, 14, -14, 16, -16])
    ptype = np.repeat(types, -(-n // 6))[:n]
    rng.shuffle(ptype)
    n_per_type = np.array([np.count_nonzero(ptype == t) for t in types])
    n_type = np.zeros(n)
    for t, k in zip(types, n_per_type):
        n_type[ptype == t] = k
    g = c.generation_index
    a, b = c.e_min_gev ** (1 - g), c.e_max_gev ** (1 - g)
    e = (a + (b - a) * rng.uniform(size=n)) ** (1.0 / (1 - g))
    pdf_e = (1 - g) * e**-g / (b - a)
    cos_z = rng.uniform(-1, 1, size=n)
    zenith = np.arccos(cos_z)
    anti = ptype < 0
    flavour = np.abs(ptype)

    s_cc = _sigma_cc(e, anti, c)
    s_nc = c.nc_over_cc * s_cc
    s_gr = np.where(ptype == -12, _sigma_gr_per_nucleon(e, c), 0.0)
    s_tot = s_cc + s_nc + s_gr
    u = rng.uniform(size=n) * s_tot
    interaction = np.where(u < s_cc, 1, np.where(u < s_cc + s_nc, 2, 3)).astype(np.int64)

    n_target = c.fiducial_volume_cm3 * c.ice_density_g_cm3 * N_AVOGADRO
    transmission = np.exp(-s_tot * N_AVOGADRO * column_depth_g_cm2(cos_z, c.depth_m, c.ice_density_g_cm3))
    area_cm2 = n_target * s_tot * transmission
    weight = area_cm2 / (pdf_e / (4.0 * np.pi)) / n_type

    y = np.where(anti, rng.beta(0.6, 2.2, size=n), rng.beta(0.6, 1.8, size=n))
    hadr = c.hadronic_light * y * e
    lepton = (1.0 - y) * e
    e_dep = np.empty(n)
    morph = np.zeros(n, dtype=np.int64)
    true_len = np.zeros(n)
    nc = interaction == 2
    e_dep[nc] = hadr[nc]
    cc = interaction == 1
    m = cc & (flavour == 12)
    e_dep[m] = hadr[m] + lepton[m]
    m = cc & (flavour == 14)
    e_dep[m] = hadr[m] + c.muon_deposit_fraction * lepton[m] * rng.lognormal(0.0, 0.5, size=m.sum())
    morph[m] = 1
    true_len[m] = 1000.0
    m = cc & (flavour == 16)
    decay_len = rng.exponential(49.0 * lepton / 1e6)
    to_mu = rng.uniform(size=n) < 0.174
    m_mu = m & to_mu
    e_dep[m_mu] = hadr[m_mu] + 0.3 * lepton[m_mu] * c.muon_deposit_fraction
    morph[m_mu] = 1
    true_len[m_mu] = 1000.0
    m_had = m & ~to_mu
    e_dep[m_had] = hadr[m_had] + rng.uniform(0.3, 0.9, size=m_had.sum()) * lepton[m_had]
    true_len[m_had] = decay_len[m_had]
    is_dc = m_had & (decay_len > 10.0) & (rng.uniform(size=n) < c.dc_efficiency)
    morph[is_dc] = 2
    gr = interaction == 3
    r = rng.uniform(size=n)
    e_dep[gr] = np.where(
        r[gr] < 0.676,
        e[gr],
        np.where(r[gr] < 0.783, 0.5 * e[gr], np.where(r[gr] < 0.889, 0.05 * e[gr], 0.5 * e[gr])),
    )
    morph[gr & (r >= 0.783) & (r < 0.889)] = 1

    # misidentification
    single = morph == 0
    to_dc = single & (rng.uniform(size=n) < c.cascade_to_dc)
    morph[to_dc] = 2
    tr = morph == 1
    morph[tr & (rng.uniform(size=n) < c.track_to_cascade)] = 0

    sig_e = np.where(morph == 1, c.sigma_log_e_track, c.sigma_log_e_cascade)
    reco_e = e_dep * np.exp(rng.normal(size=n) * sig_e)
    sig_dir = np.select(
        [morph == 1, morph == 2], [c.sigma_dir_track_rad, c.sigma_dir_dc_rad], c.sigma_dir_cascade_rad
    )
    reco_zen = _smear_direction(rng, zenith, sig_dir)
    reco_len = np.full(n, np.nan)
    genuine_dc = is_dc & (morph == 2)
    reco_len[genuine_dc] = decay_len[genuine_dc] * np.exp(
        rng.normal(size=genuine_dc.sum()) * c.sigma_log_length
    )
    reco_len[to_dc] = np.exp(rng.uniform(np.log(10.0), np.log(30.0), size=to_dc.sum()))

    pion_mu, kaon_mu = conventional_terms(e, cos_z, c)
    frac_nu = np.where(flavour == 14, c.nu_fraction_mu, c.nu_fraction_e)
    frac = np.where(anti, 1.0 - frac_nu, frac_nu)
    pion = np.select([flavour == 14, flavour == 12], [pion_mu, 0.01 * pion_mu], 0.0) * frac
    kaon = np.select([flavour == 14, flavour == 12], [kaon_mu, 0.10 * kaon_mu], 0.0) * frac
    prompt = c.prompt_norm_100tev * (e / 1e5) ** -2.7 * _knee(e) * np.where(flavour == 16, 0.1, 1.0) * 0.5
    veto_conv = _self_veto(e, cos_z, np.where(flavour == 12, 4.0, 1.0) * c.veto_energy_conv_gev)
    veto_prompt = _self_veto(e, cos_z, c.veto_energy_prompt_gev)

    nu = {
        "primaryType": ptype.astype(np.int64),
        "primaryEnergy": e,
        "primaryZenith": zenith,
        "trueLength": true_len,
        "interactionType": interaction,
        "recoDepositedEnergy": reco_e,
        "recoMorphology": morph,
        "recoLength": reco_len,
        "recoZenith": reco_zen,
        "weightOverFluxOverLivetime": weight,
        "muonWeightOverLivetime": np.zeros(n),
        "pionFlux": pion,
        "kaonFlux": kaon,
        "promptFlux": prompt,
        "conventionalSelfVetoCorrection": veto_conv,
        "promptSelfVetoCorrection": veto_prompt,
    }
    mu = _simulate_muons(rng, c)
    fields = {k: np.concatenate([nu[k], mu[k]]) for k in nu}
    return HESEMonteCarlo(fields, source=f"bayesnu simulated HESE MC (not IceCube's), seed {c.seed}")


def _simulate_muons(rng: np.random.Generator, c: HESESimulationConfig) -> dict[str, np.ndarray]:
    n = c.n_muon
    e = np.exp(rng.uniform(np.log(1e4), np.log(1e7), size=n))
    cos_z = rng.uniform(0.1, 1.0, size=n)
    zenith = np.arccos(cos_z)
    e_dep = e * rng.uniform(0.02, 0.4, size=n)
    morph = np.where(rng.uniform(size=n) < 0.7, 1, 0).astype(np.int64)
    sig_e = np.where(morph == 1, c.sigma_log_e_track, c.sigma_log_e_cascade)
    reco_e = e_dep * np.exp(rng.normal(size=n) * sig_e)
    sig_dir = np.where(morph == 1, c.sigma_dir_track_rad, c.sigma_dir_cascade_rad)
    reco_zen = _smear_direction(rng, zenith, sig_dir)
    # rate density times 1/(generation pdf) ~ E^-2.7 cos^1.5 * E (log-uniform energies)
    w = (e / 1e4) ** -1.7 * cos_z**1.5
    above = reco_e >= 60e3
    total = w[above].sum()
    w = w * (c.muon_events_above_60tev / c.livetime_s / total) if total > 0 else w * 0.0
    return {
        "primaryType": np.where(rng.uniform(size=n) < 0.5, 13, -13).astype(np.int64),
        "primaryEnergy": e,
        "primaryZenith": zenith,
        "trueLength": np.full(n, 1000.0),
        "interactionType": np.zeros(n, dtype=np.int64),
        "recoDepositedEnergy": reco_e,
        "recoMorphology": morph,
        "recoLength": np.full(n, np.nan),
        "recoZenith": reco_zen,
        "weightOverFluxOverLivetime": np.zeros(n),
        "muonWeightOverLivetime": w,
        "pionFlux": np.zeros(n),
        "kaonFlux": np.zeros(n),
        "promptFlux": np.zeros(n),
        "conventionalSelfVetoCorrection": np.ones(n),
        "promptSelfVetoCorrection": np.ones(n),
    }


def sample_events(
    mc: HESEMonteCarlo, expected_weights: np.ndarray, seed: int, source: str = "pseudo-experiment"
) -> HESEData:
    """Draw a pseudo-experiment: Poisson total, MC events picked with probability proportional to weight.

    Parameters
    ----------
    mc
        MC events (observables are copied from them).
    expected_weights
        Expected number of events contributed by each MC event (weight x livetime).
    seed
        Seed of the draw.
    source
        Description stored on the result.
    """
    rng = np.random.default_rng(seed)
    w = np.asarray(expected_weights, dtype=float)
    total = float(w.sum())
    k = rng.poisson(total)
    idx = rng.choice(w.shape[0], size=k, replace=True, p=w / total)
    obs = mc.observables()
    return HESEData(
        obs.reco_energy_gev[idx],
        obs.morphology[idx],
        obs.reco_zenith_rad[idx],
        obs.reco_length_m[idx],
        source,
    )
