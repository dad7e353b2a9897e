"""The parametric detector model, its smearing matrices and the IC40-calibrated background model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bayesnu.data import background_model as bm
from bayesnu.data.detector_model import ANG_ERR_FLOOR_DEG, DetectorModel, release_aeff_grid
from bayesnu.data.ps_formats import read_effective_area, read_events, read_smearing, write_smearing
from bayesnu.data.smearing_model import (
    SMEARING_DEC_EDGES_14Y,
    make_smearing_matrix,
    quantile_levels,
)

MODEL = DetectorModel()


# ---------------------------------------------------------------------------- effective area


def test_aeff_grows_with_string_count_and_is_absorbed_upgoing() -> None:
    x = np.array([3.0, 4.0, 5.0, 6.0])
    a = {c: MODEL.aeff_cm2(c, x, 20.0) for c in ("IC40", "IC59", "IC79", "IC86_II")}
    assert (
        np.all(a["IC40"] < a["IC59"]) and np.all(a["IC59"] < a["IC79"]) and np.all(a["IC79"] < a["IC86_II"])
    )
    # Earth absorption: at 10 PeV the vertical up-going area is far below the horizontal one.
    assert MODEL.aeff_cm2("IC86_II", 7.0, 70.0) < 1e-2 * MODEL.aeff_cm2("IC86_II", 7.0, 0.0)
    # Southern threshold: at 1 TeV the down-going area is negligible, at 10 PeV it is not.
    assert MODEL.aeff_cm2("IC86_II", 3.0, -60.0) < 1e-3 * MODEL.aeff_cm2("IC86_II", 3.0, 10.0)
    assert MODEL.aeff_cm2("IC86_II", 7.0, -60.0) > 0.05 * MODEL.aeff_cm2("IC86_II", 7.0, -2.0)
    assert MODEL.aeff_cm2("IC86_II", 9.5, 0.0) == 0.0


def test_aeff_on_release_grid() -> None:
    e, d = release_aeff_grid()
    assert len(e) == 41 and len(d) == 51 and d[1] == -73.74
    aeff = MODEL.effective_area("IC59")
    assert aeff.aeff_cm2.shape == (50, 40)
    assert np.all(aeff.aeff_cm2 >= 0) and np.all(aeff.aeff_cm2[:, e[:-1] >= 9.0] == 0)


@pytest.mark.realdata
@pytest.mark.parametrize("config", ["IC40", "IC59", "IC79", "IC86_I", "IC86_II"])
def test_aeff_rates_close_to_real_tables(real_ps_dir: Path, config: str) -> None:
    """E^-2 and E^-3 detection rates in four sin(dec) bands agree with the release within a factor 2."""
    real = read_effective_area(real_ps_dir / "irfs" / f"{config}_effectiveArea.csv")
    model = MODEL.effective_area(config)
    np.testing.assert_allclose(model.log10_enu_edges, real.log10_enu_edges)
    np.testing.assert_allclose(model.dec_edges_deg, real.dec_edges_deg)
    x = 0.5 * (real.log10_enu_edges[1:] + real.log10_enu_edges[:-1])
    de = np.diff(real.enu_edges_gev) * (x < 9.0)
    s = 0.5 * (real.sin_dec_edges[1:] + real.sin_dec_edges[:-1])
    for gamma in (2.0, 3.0):
        w = de * (10.0**x) ** -gamma
        for lo, hi in ((-1.0, -0.5), (-0.5, -0.087), (-0.087, 0.3), (0.3, 1.0)):
            band = (s >= lo) & (s < hi)
            ratio = np.sum(model.aeff_cm2[band] * w) / np.sum(real.aeff_cm2[band] * w)
            assert 0.5 < ratio < 2.0, (config, gamma, lo, ratio)


# ---------------------------------------------------------------------------- response


def test_response_resolution_energy_dependence_and_floor() -> None:
    rng = np.random.default_rng(4)
    med_psf, med_err = [], []
    for x in (2.5, 3.5, 4.5, 6.0):
        y, psi, ae = MODEL.sample_response(rng, "IC86_II", np.full(20_000, x))
        assert np.all(ae >= ANG_ERR_FLOOR_DEG) and np.all(psi >= 0) and np.all(psi <= 180)
        assert abs(np.median(y) - MODEL.reco_energy_mean(x)) < 0.15
        med_psf.append(np.median(psi))
        med_err.append(np.median(ae))
        if x >= 4.5:  # PSF and AngErr are correlated where the reconstruction error dominates
            assert stats.spearmanr(psi, ae).statistic > 0.15
    assert np.all(np.diff(med_psf) < 0)
    assert np.all(np.diff(med_err) <= 1e-9)
    # IC40 resolves worse than IC86.
    _, psi40, _ = MODEL.sample_response(rng, "IC40", np.full(20_000, 5.0))
    _, psi86, _ = MODEL.sample_response(rng, "IC86_II", np.full(20_000, 5.0))
    assert np.median(psi40) > 1.5 * np.median(psi86)


# ---------------------------------------------------------------------------- smearing


@pytest.fixture(scope="module")
def smearing_ic86():
    return make_smearing_matrix("IC86_II", seed=11, n_mc=3000)


def test_smearing_structure_and_roundtrip(smearing_ic86, tmp_path: Path) -> None:
    sm = smearing_ic86
    assert sm.shape == (35, 3, 10, 5, 4)
    sums = sm.fractional_counts.sum(axis=(2, 3, 4))
    assert np.all(sums <= 1.0 + 1e-9)
    np.testing.assert_allclose(sums[sm.block_valid], 1.0, atol=1e-9)
    # Edges per block strictly increasing; PSF starts at 0, AngErr at the 0.2 deg floor.
    valid = sm.block_valid
    assert np.all(np.diff(sm.reco_edges[valid], axis=-1) > 0)
    assert np.all(np.diff(sm.psf_edges_deg[valid], axis=-1) > 0)
    assert np.all(np.diff(sm.ang_err_edges_deg[valid], axis=-1) > 0)
    assert np.all(sm.psf_edges_deg[valid][..., 0] == 0.0)
    assert np.all(sm.ang_err_edges_deg[valid][..., 0] >= ANG_ERR_FLOOR_DEG - 1e-12)
    # Reco-energy edges differ between true bins (chosen per block, as in the release).
    assert not np.allclose(sm.reco_edges[5, 2], sm.reco_edges[20, 2])
    path = tmp_path / "IC86_II_smearing.csv"
    write_smearing(path, sm)
    back = read_smearing(path)
    np.testing.assert_array_equal(back.reco_edges, sm.reco_edges)
    np.testing.assert_array_equal(back.psf_edges_deg, sm.psf_edges_deg)
    np.testing.assert_allclose(back.fractional_counts, sm.fractional_counts, rtol=1e-8, atol=1e-15)
    assert path.stat().st_size < 5e6


def test_smearing_reproducible_and_seed_dependent(tmp_path: Path) -> None:
    a = make_smearing_matrix("IC79", seed=5, n_mc=200, log10_enu_edges=np.array([3.0, 4.0, 5.0]))
    b = make_smearing_matrix("IC79", seed=5, n_mc=200, log10_enu_edges=np.array([3.0, 4.0, 5.0]))
    c = make_smearing_matrix("IC79", seed=6, n_mc=200, log10_enu_edges=np.array([3.0, 4.0, 5.0]))
    write_smearing(tmp_path / "a.csv", a)
    write_smearing(tmp_path / "b.csv", b)
    write_smearing(tmp_path / "c.csv", c)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_smearing_follows_model(smearing_ic86) -> None:
    """Median reco energy and PSF of a northern block match the model's own draws at that energy."""
    sm = smearing_ic86
    ie, idec = 12, 2  # log10 E_nu in [4.4, 4.6], Dec in [10, 90]
    frac = sm.fractional_counts[ie, idec]
    p_reco = frac.sum(axis=(1, 2))
    cdf = np.cumsum(p_reco)
    edges = sm.reco_edges[ie, idec]
    med_sm = np.interp(0.5, np.concatenate([[0], cdf]), edges)
    rng = np.random.default_rng(3)
    x = rng.uniform(4.4, 4.6, 100_000)
    y, psi, _ = MODEL.sample_response(rng, "IC86_II", x)
    assert abs(med_sm - np.median(y)) < 0.05
    # PSF marginal: mass below the model's median PSF is ~0.5 (cells straddling it counted by fraction).
    med_psi = np.median(psi)
    lo, hi = sm.psf_edges_deg[ie, idec, :, :-1], sm.psf_edges_deg[ie, idec, :, 1:]
    share = np.clip((med_psi - lo) / (hi - lo), 0.0, 1.0)
    below = np.sum(frac.sum(axis=2) * share)
    assert abs(below - 0.5) < 0.06


def test_southern_smearing_has_selection_biased_energies(smearing_ic86) -> None:
    sm = smearing_ic86

    def mean_reco(ie: int, idec: int) -> float:
        e = sm.reco_edges[ie, idec]
        return float(np.sum(0.5 * (e[1:] + e[:-1]) * sm.fractional_counts[ie, idec].sum(axis=(1, 2))))

    assert mean_reco(10, 0) > mean_reco(10, 2) + 0.3  # log10 E_nu 4.0-4.2, south vs north


def test_smearing_14y_binning() -> None:
    sm = make_smearing_matrix(
        "IC86",
        seed=1,
        n_mc=100,
        dec_edges_deg=SMEARING_DEC_EDGES_14Y,
        n_reco=8,
        log10_enu_edges=np.array([4, 5.0]),
    )
    assert sm.shape == (1, 8, 8, 5, 4)
    np.testing.assert_allclose(quantile_levels(4), [0, 0.1464466, 0.5, 0.8535534, 1], atol=1e-6)


# ---------------------------------------------------------------------------- background


@pytest.mark.realdata
def test_background_model_matches_ic40(real_ps_dir: Path) -> None:
    """Simulated background reproduces the IC40 marginals (two-sample KS; small effect sizes)."""
    ev = read_events(real_ps_dir / "events" / "IC40_exp.csv")
    s, y, ae = bm.sample_background(np.random.default_rng(8), 36_900)
    y, ae = np.round(y, 2), np.round(ae, 2)  # the release's precision
    assert stats.ks_2samp(s, ev.sin_dec).statistic < 0.02
    assert stats.ks_2samp(y, ev.log10_energy).statistic < 0.03
    assert stats.ks_2samp(ae, ev.ang_err_deg).statistic < 0.04
    for lo, hi in ((-1.0, -0.5), (-0.2, -0.05), (0.2, 1.0)):
        m_sim, m_real = (s >= lo) & (s < hi), (ev.sin_dec >= lo) & (ev.sin_dec < hi)
        assert abs(np.median(y[m_sim]) - np.median(ev.log10_energy[m_real])) < 0.06
    assert np.all(ae >= 0.2)
    dens = bm.sin_dec_density(np.linspace(-1, 1, 2001))
    assert abs(np.trapezoid(dens, np.linspace(-1, 1, 2001)) - 1.0) < 1e-3
