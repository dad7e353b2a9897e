"""Generic binned diffuse samples: reading a tracks-like sample from disk, fitting it, bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bayesnu.analyses.diffuse import DiffuseAnalysis, energy_zenith_binning
from bayesnu.data.binned_sample import (
    BinnedSample,
    ColumnSpec,
    read_binned_data,
    read_binned_mc,
    read_binned_sample,
    write_binned_table,
)
from bayesnu.data.hese import HESEData, HESEMonteCarlo
from bayesnu.data.hese_simulate import HESESimulationConfig, conventional_terms, sample_events
from bayesnu.errors import ConfigError, DataFormatError

pytestmark = pytest.mark.xdist_group("diffuse_binned_sample")

LIVETIME_S = 8 * 3.156e7
N_MC = 60000
TRUTH = {
    "astro_norm": 6.0,
    "astro_gamma": 2.5,
    "conv_norm": 1.0,
    "prompt_norm": 1.0,
    "cr_delta_gamma": -0.05,
    "nunubar_ratio": 1.0,
    "kpi_ratio": 1.0,
    "muon_norm": 1.0,
}
#: The user's column names (deliberately not the HESE names) and units.
MC_COLUMNS = {
    "recoDepositedEnergy": {"column": "logE_reco", "log10": True},
    "recoCosZenith": "cos_zen_reco",
    "primaryEnergy": "E_true",  # ECSV column in TeV: converted to GeV
    "primaryType": "pdg",
    "weightOverFluxOverLivetime": "ow",  # ECSV column in GeV m2 sr: converted to GeV cm2 sr
    "pionFlux": "conv_pi",
    "kaonFlux": "conv_k",
    "promptFlux": "prompt",
}
DATA_COLUMNS = {"recoDepositedEnergy": {"column": "logE", "log10": True}, "recoCosZenith": "cz"}
BINNING = energy_zenith_binning(np.logspace(3.5, 7.0, 15), np.linspace(-1.0, 0.1, 6), morphologies=(1,))


def tracks_mc(n: int, seed: int) -> dict[str, np.ndarray]:
    """A northern-tracks-like MC: nu_mu / nu_mu-bar, E^-1 on [1 TeV, 10 PeV], cos zenith in [-1, 0.1].

    Effective area 1e4 cm^2 (E/10 TeV)^0.8, reconstructed energy 0.3 E with a factor-1.6
    log-normal smearing, direction smeared by 0.01 in cos zenith; fluxes from the
    parametric conventional / prompt model of :mod:`bayesnu.data.hese_simulate`.
    Columns in the user's names; weightOverFluxOverLivetime in GeV m^2 sr, energy in TeV.
    """
    rng = np.random.default_rng(seed)
    c = HESESimulationConfig()
    lo, hi = 1e3, 1e7
    e = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    cz = rng.uniform(-1.0, 0.1, n)
    anti = rng.uniform(size=n) < 0.5
    area_cm2 = 1.0e4 * (e / 1e4) ** 0.8
    # A / (p(E) p(Omega)) / N_type with p(E) = 1/(E ln(hi/lo)), p(Omega) = 1/(2 pi 1.1)
    ow_cm2 = area_cm2 * e * math.log(hi / lo) * 2 * math.pi * 1.1 / (n / 2)
    pion, kaon = conventional_terms(e, cz, c)
    frac = np.where(anti, 1 - c.nu_fraction_mu, c.nu_fraction_mu)
    prompt = c.prompt_norm_100tev * (e / 1e5) ** -2.7 * (1 + e / 1.5e5) ** -0.4 * 0.5
    reco_e = 0.3 * e * np.exp(rng.normal(size=n) * 0.5)
    return {
        "logE_reco": np.log10(reco_e),
        "cos_zen_reco": np.clip(cz + 0.01 * rng.normal(size=n), -1.0, 1.0),
        "E_true": e / 1e3,
        "pdg": np.where(anti, -14, 14),
        "ow": ow_cm2 / 1e4,
        "conv_pi": pion * frac,
        "conv_k": kaon * frac,
        "prompt": prompt,
        "run_id": rng.integers(0, 100, n),  # an unmapped column (kept as 'extra')
    }


MC_UNITS = {"E_true": "TeV", "ow": "GeV m2 sr", "conv_pi": "1/(GeV cm2 s sr)", "conv_k": "1/(GeV cm2 s sr)"}


def _pseudo_data(mc_path: Path) -> HESEData:
    """Events drawn at TRUTH from an independent MC realisation (its own file)."""
    mc = read_binned_mc(mc_path, MC_COLUMNS, morphology=1)
    empty = HESEData(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
    probe = DiffuseAnalysis.from_binned_sample(BinnedSample(empty, mc, LIVETIME_S), BINNING)
    w = sum(probe.component_event_weights(TRUTH).values())
    return sample_events(HESEMonteCarlo(probe.mc_fields), w, seed=5)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tracks")
    write_binned_table(d / "mc.ecsv", tracks_mc(N_MC, seed=1), units=MC_UNITS)
    write_binned_table(d / "mc_truth_draw.ecsv", tracks_mc(N_MC, seed=2), units=MC_UNITS)
    data = _pseudo_data(d / "mc_truth_draw.ecsv")
    cols = {"logE": np.log10(data.reco_energy_gev), "cz": np.cos(data.reco_zenith_rad)}
    write_binned_table(d / "data.csv", cols)
    write_binned_table(d / "data.fits", cols, meta={"LIVETIME": LIVETIME_S})
    write_binned_table(d / "data.json", cols)
    return d


def test_tracks_sample_fit_recovers_injected_norm(sample_dir: Path) -> None:
    """Data drawn at TRUTH from an independent MC file; the fit of the sample read from disk finds it.

    (Over 20 pseudo-experiments of this set-up the pull of astro_norm had mean -0.17 and sd 0.85.)
    """
    s = read_binned_sample(
        sample_dir / "data.csv",
        sample_dir / "mc.ecsv",
        MC_COLUMNS,
        data_columns=DATA_COLUMNS,
        livetime_s=LIVETIME_S,
        morphology=1,
    )
    assert s.mc.extra == ("run_id",)
    assert np.all(s.mc["interactionType"] == 1) and np.all(s.mc["conventionalSelfVetoCorrection"] == 1)
    # prompt (E^-2.7) and astro (E^-2.5) are nearly degenerate in this toy: prompt_norm is fixed at
    # its true value so that the Hessian error of astro_norm is meaningful (with it free some
    # pseudo-experiments trade all astro events for prompt ones)
    ana = DiffuseAnalysis.from_binned_sample(s, BINNING, fixed={"prompt_norm": 1.0})
    assert ana.binning.n_bins == 70 and ana.livetime_s == LIVETIME_S
    assert ana.selection.n_data_outside_bins + ana.counts.sum() == len(s.data)
    fit = ana.fit()
    assert fit.converged
    norm, err = fit.params["astro_norm"], fit.errors["astro_norm"]
    assert 0 < err < 0.5 * norm
    assert abs(norm - TRUTH["astro_norm"]) < 2.0 * err, (norm, err)
    assert abs(fit.params["astro_gamma"] - TRUTH["astro_gamma"]) < 3.0 * fit.errors["astro_gamma"]
    # the MC's units were converted: expected astro events at the truth are the same as in physical units
    raw = tracks_mc(N_MC, seed=1)
    e = raw["E_true"] * 1e3
    cz, edges = raw["cos_zen_reco"], BINNING.energy_edges_gev
    keep = (10 ** raw["logE_reco"] >= edges[0]) & (10 ** raw["logE_reco"] < edges[-1]) & (cz < 0.1)
    direct = np.sum((6.0 / 6 * 1e-18 * (e / 1e5) ** -2.5 * raw["ow"] * 1e4 * LIVETIME_S)[keep])
    assert ana.expected_counts(TRUTH)["astro"].sum() == pytest.approx(direct, rel=1e-10)


def test_formats_agree_and_livetime_from_metadata(sample_dir: Path) -> None:
    a = read_binned_data(sample_dir / "data.csv", DATA_COLUMNS, morphology=1)
    for name in ("data.fits", "data.json"):
        b = read_binned_data(sample_dir / name, DATA_COLUMNS, morphology=1)
        np.testing.assert_allclose(b.reco_energy_gev, a.reco_energy_gev, rtol=1e-12)
        np.testing.assert_allclose(b.reco_zenith_rad, a.reco_zenith_rad, rtol=1e-12)
    s = read_binned_sample(
        sample_dir / "data.fits", sample_dir / "mc.ecsv", MC_COLUMNS, data_columns=DATA_COLUMNS
    )
    assert s.livetime_s == LIVETIME_S
    with pytest.raises(DataFormatError, match="livetime") as exc:
        read_binned_sample(
            sample_dir / "data.csv", sample_dir / "mc.ecsv", MC_COLUMNS, data_columns=DATA_COLUMNS
        )
    assert "data.csv" in str(exc.value) and "livetime_s=" in str(exc.value)


def _small_mc_csv(path: Path, **edits: tuple[int, str]) -> Path:
    """A 5-row MC CSV in HESE-like column names; ``edits`` put text into (row, column)."""
    rows = [
        ["reco_e", "zenith", "e_true", "ptype", "w"],
        ["1e5", "2.0", "2e5", "14", "1.5"],
        ["2e5", "1.9", "3e5", "-14", "2.5"],
        ["3e5", "2.1", "4e5", "14", "3.5"],
        ["4e5", "2.2", "5e5", "-14", "4.5"],
        ["5e5", "2.3", "6e5", "14", "5.5"],
    ]
    for col, (row, text) in edits.items():
        rows[row + 1][rows[0].index(col)] = text
    path.write_text("# a comment line\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


SMALL = {
    "recoDepositedEnergy": "reco_e",
    "recoZenith": "zenith",
    "primaryEnergy": "e_true",
    "primaryType": "ptype",
    "weightOverFluxOverLivetime": "w",
}


def test_small_csv_reads(tmp_path: Path) -> None:
    mc = read_binned_mc(_small_mc_csv(tmp_path / "mc.csv"), SMALL)
    assert len(mc) == 5 and np.all(mc["recoMorphology"] == 0) and np.isnan(mc["recoLength"]).all()
    np.testing.assert_array_equal(mc["weightOverFluxOverLivetime"], [1.5, 2.5, 3.5, 4.5, 5.5])


@pytest.mark.parametrize(
    ("edit", "pattern", "line", "column"),
    [
        ({"w": (2, "nan")}, r"row 2: value is nan \(not finite\)", 5, "w"),
        ({"w": (3, "-1.0")}, r"row 3: weightOverFluxOverLivetime = -1.0: negative weight", 6, "w"),
        ({"w": (1, "")}, r"row 1: value is empty or masked", 4, "w"),
        ({"e_true": (0, "abc")}, r"row 0: 'abc' is not a number", 3, "e_true"),
        ({"ptype": (4, "22")}, r"row 4: primaryType = 22: PDG code", 7, "ptype"),
        ({"zenith": (1, "4.0")}, r"row 1: recoZenith = 4.0: zenith must lie in \[0, pi\]", 4, "zenith"),
        ({"ptype": (2, "13")}, r"row 2: .*muon rows .* neutrino weight", 5, "w"),
    ],
)
def test_bad_values_name_file_column_row(tmp_path: Path, edit, pattern, line, column) -> None:
    path = _small_mc_csv(tmp_path / "mc.csv", **edit)
    with pytest.raises(DataFormatError, match=pattern) as exc:
        read_binned_mc(path, SMALL)
    err = exc.value
    assert err.path == str(path) and err.line == line and err.fix
    assert err.field.split()[0] == column  # the user's column name (and the field it feeds)
    assert "mc.csv" in str(err)


def test_missing_column_and_mapping_errors(tmp_path: Path) -> None:
    path = _small_mc_csv(tmp_path / "mc.csv")
    with pytest.raises(DataFormatError, match=r"column 'weight' .* is missing") as exc:
        read_binned_mc(path, {**SMALL, "weightOverFluxOverLivetime": "weight"})
    assert exc.value.field == "weight" and "mc.csv" in str(exc.value) and "'w'" in str(exc.value)
    no_w = {k: v for k, v in SMALL.items() if k != "weightOverFluxOverLivetime"}
    with pytest.raises(DataFormatError, match="no column for"):
        read_binned_mc(path, no_w)
    with pytest.raises(DataFormatError, match="unknown field"):
        read_binned_mc(path, {**SMALL, "bogus": "w"})
    with pytest.raises(DataFormatError, match="both recoZenith and recoCosZenith"):
        read_binned_mc(path, {**SMALL, "recoCosZenith": "zenith"})
    with pytest.raises(DataFormatError, match="cannot be converted"):
        read_binned_mc(path, {**SMALL, "weightOverFluxOverLivetime": ColumnSpec("w", unit="GeV s")})
    with pytest.raises(DataFormatError, match="unknown table type"):
        read_binned_mc(tmp_path / "mc.txt", SMALL)
    with pytest.raises(DataFormatError, match="file not found"):
        read_binned_mc(tmp_path / "nope.csv", SMALL)


def test_units_and_json_errors(tmp_path: Path) -> None:
    p = write_binned_table(
        tmp_path / "mc.ecsv",
        {
            "reco_e": [1.0, 2.0],
            "zenith": [90.0, 120.0],
            "e_true": [1.0, 2.0],
            "ptype": [14, -14],
            "w": [1.0, -2.0],
        },
        units={"reco_e": "TeV", "zenith": "deg", "e_true": "PeV"},
    )
    with pytest.raises(DataFormatError, match=r"row 1: .*negative weight") as exc:
        read_binned_mc(p, SMALL)
    assert exc.value.line is not None and "mc.ecsv" in str(exc.value)
    d = read_binned_data(p, SMALL)  # data need only the observables; degrees and TeV are converted
    np.testing.assert_allclose(d.reco_zenith_rad, np.radians([90.0, 120.0]))
    np.testing.assert_allclose(d.reco_energy_gev, [1e3, 2e3])
    j = tmp_path / "mc.json"
    j.write_text('{"reco_e": [1e5, 2e5],\n "zenith": [1.0, "x"]}')
    with pytest.raises(DataFormatError, match="element 1: 'x' is not a number") as exc:
        read_binned_data(j, SMALL)
    assert exc.value.line == 2
    j.write_text('{"reco_e": [1e5, 2e5],\n "zenith": [1.0]}')
    with pytest.raises(DataFormatError, match="has 1 values, others 2"):
        read_binned_data(j, SMALL)


def test_analysis_rejects_hese_splines(sample_dir: Path) -> None:
    s = read_binned_sample(
        sample_dir / "data.fits", sample_dir / "mc.ecsv", MC_COLUMNS, data_columns=DATA_COLUMNS, morphology=1
    )
    with pytest.raises(ConfigError, match="spline_dir"):
        DiffuseAnalysis.from_binned_sample(s, BINNING, spline_dir="somewhere")
    with pytest.raises(ConfigError, match="cos zenith edges"):
        energy_zenith_binning([1e3, 1e4], [-2.0, 0.0])


def _spec(sample_dir: Path) -> dict:
    return {
        "data": "data.csv",
        "mc": "mc.ecsv",
        "livetime_s": LIVETIME_S,
        "morphology": 1,
        "columns": MC_COLUMNS,
        "data_columns": DATA_COLUMNS,
        "binning": {
            "energy_edges_gev": {"log10_min": 3.5, "log10_max": 7.0, "n": 14},
            "cos_zenith_edges": {"min": -1.0, "max": 0.1, "n": 5},
            "morphologies": [1],
        },
    }


def test_spec_file_cli_and_card(sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    import yaml

    from bayesnu.analyses.diffuse.card import run_diffuse_card
    from bayesnu.analyses.diffuse.sample_spec import analysis_from_spec
    from bayesnu.cli import main

    spec_path = sample_dir / "sample.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(sample_dir)))
    ana = analysis_from_spec(spec_path, fixed={"prompt_norm": 1.0})
    np.testing.assert_allclose(ana.binning.energy_edges_gev, BINNING.energy_edges_gev, rtol=1e-12)
    args = ["fit", "diffuse", "--sample", str(spec_path), "--fix", "prompt_norm=1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] and out["astro_norm"] == pytest.approx(ana.fit().params["astro_norm"], rel=1e-6)
    assert main(["fit", "diffuse", "--sample", str(spec_path), "--data", "x.json"]) == 2
    fp = tmp_path / "fp.ecsv"
    args = ["flux-points", "diffuse", "--sample", str(spec_path), "--fix", "prompt_norm=1", "--energy-edges",
            "1e4,1e5,1e6", "--n-scan", "3", "--out", str(fp), "--json"]  # fmt: skip
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 2 and rows[0]["astro_norm_ul"] > rows[0]["astro_norm"] > 0 and fp.stat().st_size > 0
    res = run_diffuse_card(
        {"binned_sample": str(spec_path), "fixed": {"prompt_norm": 1.0}, "plots": True}, tmp_path
    )
    assert res["fit"]["astro_norm"] == pytest.approx(out["astro_norm"], rel=1e-6)
    assert (tmp_path / "energy_projection.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="binned_sample replaces"):
        run_diffuse_card({"binned_sample": str(spec_path), "mc": "simulated"}, tmp_path)
    bad = _spec(sample_dir) | {"binning": {"energy_edges_gev": [1e3, 1e4]}}
    with pytest.raises(ConfigError, match="cos_zenith_edges is missing"):
        analysis_from_spec(bad, sample_dir)
