"""The point-source model card ``models/ngc1068_10yr.yaml`` (NGC 1068 on the 10-year release).

The card is validated against its schema without data; on the real release files
(``BAYESNU_TEST_DATA``, default ``../shared/data``; skipped when absent) it runs end to end
with the NUTS settings reduced through the runner's input mapping (the card's own
``sampling`` section is replaced: 2 chains x 100 draws instead of 4 x 1000), checking the
resolved data paths, the "simulated smearing" provenance flag and every output file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from astropy.table import Table

from bayesnu.analyses import point_source_card as psc
from bayesnu.analyses.priors import Prior
from bayesnu.config import load_card, resolve_path
from bayesnu.data.ps_release import load_ps_release
from bayesnu.errors import ConfigError
from tests.conftest import REPO

CARD = REPO / "models" / "ngc1068_10yr.yaml"


def test_ngc1068_card_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    card = load_card(CARD)
    c = psc.parse_card(card)
    assert c.name == "ngc1068_10yr" and c.analysis == "point_source"
    assert c.data.kind == "release" and c.data.release == "10y"
    assert c.data.seasons is None  # every season whose events file is present
    assert c.data.complete_missing is True  # missing smearing matrices are simulated (and flagged)
    assert (c.source.name, c.source.ra_deg, c.source.dec_deg) == ("NGC 1068", 40.67, -0.01)
    assert (c.fit.e0_gev, c.fit.gamma_min, c.fit.gamma_max) == (1000.0, 1.0, 4.0)
    gamma, ns = Prior.from_dict(c.priors.gamma), Prior.from_dict(c.priors.ns)
    assert gamma.support == (c.fit.gamma_min, c.fit.gamma_max)
    assert ns.support[0] == 0.0 and ns.support[1] <= c.fit.ns_max
    assert (c.sampling.chains, c.sampling.draws, c.sampling.warmup) == (4, 1000, 1000)
    assert c.output.dir == "bayesnu_output/ngc1068_10yr"
    # data.path: ${BAYESNU_PS10Y}, else the shared data folder beside the repository
    monkeypatch.delenv("BAYESNU_PS10Y", raising=False)
    default = resolve_path(c.data.path, CARD.parent)
    assert default == (REPO.parent / "shared" / "data" / "icecube_10year_ps").resolve()
    monkeypatch.setenv("BAYESNU_PS10Y", str(tmp_path / "rel"))
    assert resolve_path(c.data.path, CARD.parent) == tmp_path / "rel"
    with pytest.raises(ConfigError, match="bayesnu data fetch icecube-10y-ps"):
        psc._release_dir(c.data, CARD.parent)  # the directory does not exist: say how to get it
    # the schema catches typos in the card
    bad = copy.deepcopy(card)
    bad["sampling"]["draw"] = 10
    with pytest.raises(ConfigError, match=r"sampling\.draw"):
        psc.parse_card(bad)


@pytest.mark.realdata
def test_ngc1068_card_runs_on_real_release(
    real_ps_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BAYESNU_PS10Y", str(real_ps_dir))
    monkeypatch.setenv("BAYESNU_CACHE", str(tmp_path / "cache"))
    rel = load_ps_release(real_ps_dir, None, release="10y")
    missing = [s.name for s in rel if s.smearing is None]  # the shared copy: IC40 events, no smearing
    card = load_card(CARD)
    no_completion = copy.deepcopy(card)
    no_completion["data"]["complete_missing"] = False
    if missing:
        with pytest.raises(ConfigError, match="complete_missing"):
            psc._release_dir(psc.parse_card(no_completion).data, CARD.parent)
    card["sampling"] = {**card["sampling"], "chains": 2, "draws": 100, "warmup": 100}
    out = tmp_path / "out"
    res = psc.run_card(card, CARD.parent, out)
    prov = res["provenance"]
    assert prov["simulated"] is False
    if missing:
        # the real events and effective areas, with simulated smearing matrices in a cached copy
        assert prov["simulated_smearing"] == missing
        assert Path(prov["real_release"]).resolve() == real_ps_dir.resolve()
        assert Path(res["data"]).is_relative_to(tmp_path / "cache" / "completed")
    else:
        assert "simulated_smearing" not in prov and Path(res["data"]) == real_ps_dir.resolve()
    fit = res["fit"]
    assert fit["n_events"] == sum(len(s.events.ra_deg) for s in rel)
    assert fit["livetime_days"] == pytest.approx(sum(s.livetime_s for s in rel) / 86400.0, rel=1e-9)
    if rel.season_names == ("IC40",):
        assert fit["n_events"] == 36900 and fit["livetime_days"] == pytest.approx(376.36, abs=0.01)
    assert fit["converged"] and fit["ts"] >= 0 and fit["ns"] >= 0
    assert fit["source"]["name"] == "NGC 1068"
    for name in (
        "fit.json",
        "posterior.nc",
        "summary.ecsv",
        "corner.png",
        "trace.png",
        "rank.png",
        "card.yaml",
    ):
        assert (out / name).is_file(), name
    written = json.loads((out / "fit.json").read_text())
    assert written["provenance"] == prov
    assert written["posterior"]["chains"] == 2 and written["posterior"]["draws"] == 100
    table = Table.read(out / "summary.ecsv")
    assert list(table["parameter"]) == ["ns", "gamma", "flux_norm", "e2dnde"]
    assert table.meta["simulated"] is False and table.meta["card"] == "ngc1068_10yr"
    assert "draws: 100" in (out / "card.yaml").read_text()  # the card as run, with its overrides
