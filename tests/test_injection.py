"""Signal injection through effective area and smearing matrix (JAX): distributions, counts, determinism."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from bayesnu.data.detector_model import DetectorModel
from bayesnu.data.ps_release import RELEASE_10Y, Season
from bayesnu.data.simulate import SEASON_TIMES, _rng, simulate_uptime
from bayesnu.data.smearing_model import make_smearing_matrix
from bayesnu.errors import ConfigError
from bayesnu.flux import PowerLaw
from bayesnu.irf.injection import SignalInjector

SRC_RA, SRC_DEC = 77.36, 5.69
N_FIXED = 20_000


def _season(name: str, n_mc: int = 1500) -> Season:
    model = DetectorModel()
    start, livetime = SEASON_TIMES[name]
    return Season(
        spec=RELEASE_10Y.season(name),
        events=None,
        uptime=simulate_uptime(_rng(1, 2, 0), start, livetime),
        effective_area=model.effective_area(name),
        smearing=make_smearing_matrix(name, model, seed=2, n_mc=n_mc),
    )


@pytest.fixture(scope="module")
def seasons() -> list[Season]:
    return [_season("IC79"), _season("IC86_II")]


@pytest.fixture(scope="module")
def big_sample(seasons):
    """20,000 events of one season (fixed count), for the distribution tests."""
    inj = SignalInjector(seasons[1:], SRC_RA, SRC_DEC, PowerLaw(norm=1e-15, gamma=2.5))
    ev = inj.sample(jax.random.key(42), N_FIXED, ns=float(N_FIXED), poisson=False)
    return inj, {k: np.asarray(v) for k, v in ev._asdict().items()}


def _chi2_pvalue(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0) -> float:
    """Pearson chi-square p-value, pooling cells with small expectation into one."""
    observed, expected = observed.ravel().astype(float), expected.ravel()
    small = expected < min_expected
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    assert np.all(obs[~keep] == 0), "events in cells of zero probability"
    chi2 = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    return float(stats.chi2.sf(chi2, keep.sum() - 1))


# ---------------------------------------------------------------------------- expected counts


def _numpy_expected(season: Season, dec: float, dnde, e_range=None) -> float:
    aeff = season.effective_area
    row = aeff.aeff_cm2[int(aeff.dec_index(dec))]
    edges = aeff.enu_edges_gev
    total = 0.0
    for i in range(len(row)):
        lo, hi = edges[i], edges[i + 1]
        if e_range is not None:
            lo, hi = max(lo, e_range[0]), min(hi, e_range[1])
        if hi <= lo or row[i] == 0:
            continue
        val, _ = integrate.quad(dnde, lo, hi, epsrel=1e-11, limit=200)
        total += row[i] * val
    return total * season.livetime_s


@pytest.mark.parametrize(
    ("gamma", "e_cut", "e_range"),
    [(2.0, None, None), (2.7, None, (3e3, 2e6)), (1.0, None, None), (2.2, 3e5, None)],
)
def test_expected_counts_match_numpy(seasons, gamma: float, e_cut, e_range) -> None:
    flux = PowerLaw(norm=3e-16, gamma=gamma, e_cut_gev=e_cut)
    inj = SignalInjector(seasons, SRC_RA, SRC_DEC, flux, e_range_gev=e_range)

    def dnde(e: float) -> float:
        v = 3e-16 * (e / 1000.0) ** -gamma
        return v * np.exp(-e / e_cut) if e_cut else v

    want = np.array([_numpy_expected(s, SRC_DEC, dnde, e_range) for s in seasons])
    np.testing.assert_allclose(inj.expected_counts(), want, rtol=1e-7)
    np.testing.assert_allclose(inj.expected_counts_per_unit_norm(), want / 3e-16, rtol=1e-7)


# ---------------------------------------------------------------------------- distributions


def test_true_energy_follows_flux_times_aeff(big_sample) -> None:
    inj, ev = big_sample
    assert ev["n"] == N_FIXED and ev["valid"].all()
    season = inj.season_names.index("IC86_II")
    assert np.all(ev["season"] == season)
    t = inj.tables
    lo, hi = np.asarray(t.sub_e_lo_gev[0]), np.asarray(t.sub_e_hi_gev[0])
    w = (
        np.asarray(t.sub_aeff_cm2[0])
        * np.asarray(inj.flux.shape_integral(lo, hi))
        * np.asarray(t.sub_valid[0])
    )
    # Chi-square in the sub-bins (true-energy grid, 1/8 of the A_eff bins).
    edges = np.log10(np.append(lo[w > 0], hi[w > 0][-1]))
    counts, _ = np.histogram(ev["log10_enu"], edges)
    assert _chi2_pvalue(counts, N_FIXED * w[w > 0] / w.sum()) > 1e-4
    # Inside the most populated sub-bin the energy follows E^-2.5 (KS).
    k = np.argmax(w)
    inside = ev["log10_enu"][(ev["log10_enu"] >= np.log10(lo[k])) & (ev["log10_enu"] < np.log10(hi[k]))]
    a = 1.0 - 2.5
    cdf = lambda le: ((10.0**le) ** a - lo[k] ** a) / (hi[k] ** a - lo[k] ** a)  # noqa: E731
    assert stats.kstest(inside, cdf).pvalue > 1e-3


def test_reco_energy_and_psf_follow_smearing_marginals(big_sample, seasons) -> None:
    inj, ev = big_sample
    sm = seasons[1].smearing
    idec = int(sm.dec_index(SRC_DEC))
    ie = np.searchsorted(sm.log10_enu_edges, ev["log10_enu"], side="right") - 1
    t = inj.tables
    lo, hi = np.asarray(t.sub_e_lo_gev[0]), np.asarray(t.sub_e_hi_gev[0])
    w = (
        np.asarray(t.sub_aeff_cm2[0])
        * np.asarray(inj.flux.shape_integral(lo, hi))
        * np.asarray(t.sub_valid[0])
    )
    p_e = np.bincount(np.asarray(t.sub_sm_index[0]), weights=w, minlength=sm.shape[0]) / w.sum()
    frac = sm.fractional_counts[:, idec]
    norm = frac.sum(axis=(1, 2, 3))
    cond = frac / np.where(norm > 0, norm, 1)[:, None, None, None]
    # Reco bin of each event inside its own true bin's edges.
    reco_edges = sm.reco_edges[ie, idec]
    ir = np.sum(ev["log10_energy"][:, None] >= reco_edges[:, 1:-1], axis=1)
    assert np.all(ev["log10_energy"] >= reco_edges[:, 0]) and np.all(ev["log10_energy"] <= reco_edges[:, -1])
    obs_er = np.zeros(cond.shape[:2])
    np.add.at(obs_er, (ie, ir), 1)
    exp_er = N_FIXED * p_e[:, None] * cond.sum(axis=(2, 3))
    assert _chi2_pvalue(obs_er, exp_er) > 1e-4
    psf_edges = sm.psf_edges_deg[ie, idec, ir]
    ip = np.sum(ev["psf_deg"][:, None] >= psf_edges[:, 1:-1], axis=1)
    obs_erp = np.zeros(cond.shape[:3])
    np.add.at(obs_erp, (ie, ir, ip), 1)
    exp_erp = N_FIXED * p_e[:, None, None] * cond.sum(axis=3)
    assert _chi2_pvalue(obs_erp, exp_erp) > 1e-4
    # Marginal PSF distribution over all true bins: KS against the mixture of uniform cells.
    cells_w = (N_FIXED * p_e[:, None, None] * cond.sum(axis=3)).ravel()
    c_lo = sm.psf_edges_deg[:, idec, :, :-1].ravel()
    c_hi = sm.psf_edges_deg[:, idec, :, 1:].ravel()
    keep = cells_w > 0
    c_lo, c_hi, cw = c_lo[keep], c_hi[keep], cells_w[keep] / cells_w[keep].sum()

    def psf_cdf(x: np.ndarray) -> np.ndarray:
        return np.sum(cw * np.clip((np.asarray(x)[..., None] - c_lo) / (c_hi - c_lo), 0, 1), axis=-1)

    assert stats.kstest(ev["psf_deg"][:5000], psf_cdf).pvalue > 1e-3
    assert np.all(ev["ang_err_deg"] >= 0.2 - 1e-12)


def test_directions_are_rotated_by_psf(big_sample) -> None:
    _, ev = big_sample
    ra, dec = np.radians(ev["ra_deg"]), np.radians(ev["dec_deg"])
    r0, d0 = np.radians(SRC_RA), np.radians(SRC_DEC)
    cos_psi = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - r0)
    psi = np.degrees(np.arccos(np.clip(cos_psi, -1, 1)))
    np.testing.assert_allclose(psi, ev["psf_deg"], atol=1e-6)
    # Position angle uniform: the offsets in (ra cos dec, dec) have no preferred direction.
    pa = np.arctan2((ra - r0 + np.pi) % (2 * np.pi) - np.pi, dec - d0)
    assert stats.kstest(pa, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    assert np.all((ev["ra_deg"] >= 0) & (ev["ra_deg"] < 360))


# ---------------------------------------------------------------------------- seasons, times, keys


@pytest.fixture(scope="module")
def two_season_injector(seasons) -> SignalInjector:
    return SignalInjector(seasons, SRC_RA, SRC_DEC, PowerLaw(norm=1e-15, gamma=2.0))


def test_season_split_and_times(two_season_injector, seasons) -> None:
    inj = two_season_injector
    keys = jax.random.split(jax.random.key(3), 200)
    many = inj.sample_many(keys, 64, ns=20.0)
    valid = np.asarray(many.valid)
    season = np.asarray(many.season)[valid]
    counts = np.bincount(season, minlength=2)
    p = inj.expected_counts() / inj.expected_counts().sum()
    assert _chi2_pvalue(counts, counts.sum() * p) > 1e-4
    # Poisson number of events with mean ns.
    n = np.asarray(many.n)
    assert abs(n.mean() - 20.0) < 4 * np.sqrt(20.0 / len(n))
    assert 0.6 < n.var() / 20.0 < 1.5
    mjd = np.asarray(many.mjd)[valid]
    for k, s in enumerate(seasons):
        assert s.uptime.contains(mjd[season == k]).all()


def test_same_key_same_events_and_vmap_equals_loop(two_season_injector) -> None:
    inj = two_season_injector
    keys = jax.random.split(jax.random.key(9), 4)
    batch = inj.sample_many(keys, 64, ns=20.0)
    for i in range(4):
        one = inj.sample(keys[i], 64, ns=20.0)
        for name, a, b in zip(one._fields, one, batch):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[i], err_msg=name)
    again = inj.sample(keys[0], 64, ns=20.0)
    assert np.array_equal(np.asarray(again.ra_deg), np.asarray(batch.ra_deg)[0])
    other = inj.sample(keys[1], 64, ns=20.0)
    assert not np.array_equal(np.asarray(other.ra_deg), np.asarray(again.ra_deg))


def test_flux_mean_and_overflow(two_season_injector) -> None:
    inj = two_season_injector
    ev = inj.sample(jax.random.key(0), 16, ns=200.0)
    assert int(ev.n) == 16 and int(ev.n_requested) > 16 and np.asarray(ev.valid).all()
    # Without ns the flux sets the mean: for a flux giving ~0 events nothing is injected.
    faint = inj.sample(jax.random.key(0), 16, flux=PowerLaw(norm=1e-30, gamma=2.0))
    assert int(faint.n) == 0 and not np.asarray(faint.valid).any()


def test_injector_errors(seasons) -> None:
    s = seasons[0]
    no_sm = Season(spec=s.spec, events=None, uptime=s.uptime, effective_area=s.effective_area, smearing=None)
    with pytest.raises(ConfigError, match="no smearing matrix"):
        SignalInjector([no_sm], 0.0, 0.0, PowerLaw())
    with pytest.raises(ConfigError, match="within"):
        SignalInjector(seasons, 0.0, 95.0, PowerLaw())
    with pytest.raises(ConfigError, match="at least one season"):
        SignalInjector([], 0.0, 0.0, PowerLaw())


def test_vmap_over_spectral_index(two_season_injector) -> None:
    inj = two_season_injector
    gammas = jax.numpy.array([1.5, 2.5, 3.5])
    ev = jax.vmap(lambda g: inj.sample(jax.random.key(5), 512, ns=400.0, flux=inj.flux.with_params(gamma=g)))(
        gammas
    )
    med = [np.median(np.asarray(ev.log10_enu)[i][np.asarray(ev.valid)[i]]) for i in range(3)]
    assert med[0] > med[1] + 0.3 and med[1] > med[2] + 0.3
