"""HESE release readers/writers and the parametric MC simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesnu.data.hese import (
    MC_FIELDS,
    MC_FILES,
    HESECuts,
    cut_mask,
    read_hese_data,
    read_hese_mc,
    write_hese_data,
    write_hese_mc,
)
from bayesnu.data.hese_simulate import HESESimulationConfig, sample_events, simulate_hese_mc
from bayesnu.errors import DataFormatError


@pytest.fixture(scope="module")
def small_mc():
    return simulate_hese_mc(HESESimulationConfig(n_neutrino=6000, n_muon=300, seed=3))


def test_real_data_reads_and_cuts(real_hese_dir):
    d = read_hese_data(real_hese_dir / "HESE_data.json")
    assert len(d) == 102
    assert sorted(np.unique(d.morphology).tolist()) == [0, 1, 2]
    assert np.isnan(d.reco_length_m[d.morphology != 2]).all()
    assert int(cut_mask(d.reco_energy_gev, d.morphology, d.reco_length_m, HESECuts()).sum()) == 60


def test_data_roundtrip(tmp_path, real_hese_dir):
    d = read_hese_data(real_hese_dir / "HESE_data.json")
    p = write_hese_data(tmp_path / "d.json", d)
    d2 = read_hese_data(p)
    for a, b in zip(d.as_fields().values(), d2.as_fields().values()):
        np.testing.assert_array_equal(a, b)


def test_mc_schema_roundtrip(tmp_path, small_mc):
    files = write_hese_mc(tmp_path, small_mc)
    assert [f.name for f in files] == list(MC_FILES)
    for f, names in zip(files, MC_FILES.values()):
        assert set(json.loads(f.read_text())) == set(names)
    mc = read_hese_mc(tmp_path)
    assert set(mc.fields) == set(MC_FIELDS)
    for k in MC_FIELDS:
        np.testing.assert_array_equal(mc[k], small_mc[k])


def test_simulator_is_deterministic_and_physical(small_mc):
    again = simulate_hese_mc(HESESimulationConfig(n_neutrino=6000, n_muon=300, seed=3))
    np.testing.assert_array_equal(again["recoDepositedEnergy"], small_mc["recoDepositedEnergy"])
    other = simulate_hese_mc(HESESimulationConfig(n_neutrino=6000, n_muon=300, seed=4))
    assert not np.array_equal(other["recoDepositedEnergy"], small_mc["recoDepositedEnergy"])
    f = small_mc.fields
    mu = np.abs(f["primaryType"]) == 13
    assert mu.sum() == 300 and np.all(f["interactionType"][mu] == 0)
    assert np.all(f["weightOverFluxOverLivetime"][mu] == 0) and np.all(f["muonWeightOverLivetime"][~mu] == 0)
    assert np.all(f["weightOverFluxOverLivetime"][~mu] > 0)
    # Glashow resonance only for electron antineutrinos, deposited energy never above the primary's
    assert set(np.unique(f["primaryType"][f["interactionType"] == 3])) <= {-12}
    assert np.all(f["recoDepositedEnergy"][~mu] < 2.0 * f["primaryEnergy"][~mu])
    # double cascades carry a length, the others NaN
    dc = f["recoMorphology"] == 2
    assert np.isfinite(f["recoLength"][dc]).all() and np.isnan(f["recoLength"][~dc]).all()
    # self-veto: up-going events always pass
    up = np.cos(f["primaryZenith"]) < 0
    assert np.all(f["conventionalSelfVetoCorrection"][up & ~mu] == 1.0)


def test_sample_events_poisson_total(small_mc):
    w = np.full(len(small_mc), 50.0 / len(small_mc))
    n = [len(sample_events(small_mc, w, seed=s)) for s in range(40)]
    assert 45 < np.mean(n) < 55
    assert len(sample_events(small_mc, w, seed=1)) == len(sample_events(small_mc, w, seed=1))


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        (
            '{"recoDepositedEnergy": [1e5], "recoMorphology": [0], "recoZenith": [1.0]}',
            "recoLength",
            "missing",
        ),
        (
            '{"recoDepositedEnergy": [1e5, 2e5], "recoMorphology": [0], "recoZenith": [1.0], '
            '"recoLength": [1]}',
            "recoDepositedEnergy",
            "differing lengths",
        ),
        (
            '{"recoDepositedEnergy": [1e5], "recoMorphology": [5], "recoZenith": [1.0], "recoLength": [1]}',
            "recoMorphology",
            "morphology",
        ),
        (
            '{"recoDepositedEnergy": ["x"], "recoMorphology": [0], "recoZenith": [1.0], "recoLength": [1]}',
            "recoDepositedEnergy",
            "not a number",
        ),
        (
            '{"recoDepositedEnergy": [1e5], "recoMorphology": [0], "recoZenith": [4.0], "recoLength": [1]}',
            "recoZenith",
            "[0, pi]",
        ),
    ],
)
def test_data_validation_names_field(tmp_path, text, field, needle):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(DataFormatError) as exc:
        read_hese_data(p)
    assert exc.value.field == field
    assert needle in str(exc.value)
    assert str(p) in str(exc.value) and "Fix:" in str(exc.value)


def test_json_syntax_error_has_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n"recoDepositedEnergy": [1,\n 2,,]\n}')
    with pytest.raises(DataFormatError) as exc:
        read_hese_data(p)
    assert exc.value.line == 3


def test_mc_validation(tmp_path, small_mc):
    write_hese_mc(tmp_path, small_mc)
    flux = json.loads((tmp_path / "HESE_mc_flux.json").read_text())
    flux["promptSelfVetoCorrection"][5] = 1.5
    (tmp_path / "HESE_mc_flux.json").write_text(json.dumps(flux))
    with pytest.raises(DataFormatError) as exc:
        read_hese_mc(tmp_path)
    assert exc.value.field == "promptSelfVetoCorrection" and "element 5" in str(exc.value)
    (tmp_path / "HESE_mc_truth.json").unlink()
    with pytest.raises(DataFormatError, match="simulate-hese"):
        read_hese_mc(tmp_path)
