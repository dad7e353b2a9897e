"""All-sky figures: every wrapper renders with Agg, with contours and marks, and saves a PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import healpy as hp
import numpy as np
import pytest
from matplotlib.figure import Figure

from bayesnu.errors import ConfigError
from bayesnu.plotting.sky import plot_posterior_map, plot_prior, plot_sky_map, plot_ts_map
from bayesnu.sky.maps import credible_levels, prior_gaussian

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RES = 180  # coarse sampling keeps the tests fast


@pytest.fixture(scope="module")
def prior():
    return prior_gaussian(150.0, 20.0, 8.0, 32)


def _ts_map(nside: int = 32) -> np.ndarray:
    rng = np.random.default_rng(3)
    ts = rng.exponential(1.0, hp.nside2npix(nside)) - 0.5
    ts[hp.ang2pix(nside, 155.0, 25.0, lonlat=True)] = 30.0
    return ts


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC


def test_plot_sky_map_basic_and_save(tmp_path, prior):
    out = tmp_path / "figs" / "sky.png"
    fig = plot_sky_map(
        prior.values,
        title="test",
        label="p",
        contours=credible_levels(prior),
        levels=(0.5, 0.9),
        mark=(150.0, 20.0),
        mark_label="source",
        resolution=RES,
        save=out,
    )
    assert isinstance(fig, Figure)
    assert _is_png(out)
    ax = fig.axes[0]
    assert ax.name == "mollweide"
    # RA increases to the left: 0h on the right edge, tick labels in hours
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "22h" and labels[-1] == "2h"
    assert any(line.get_label() == "Galactic plane" for line in ax.get_lines())
    assert any(line.get_label() == "source" for line in ax.get_lines())


def test_plot_sky_map_aitoff_log_degrees_and_existing_axes(tmp_path, prior):
    fig = Figure()
    ax = fig.add_subplot(projection="aitoff")
    got = plot_sky_map(
        prior,
        ax=ax,
        log=True,
        ra_units="degrees",
        galactic_plane=False,
        resolution=RES,
        colorbar=False,
    )
    assert got is fig
    assert ax.get_xticklabels()[0].get_text() == "330°"
    fig.savefig(tmp_path / "aitoff.png")
    assert _is_png(tmp_path / "aitoff.png")


def test_plot_prior(tmp_path, prior):
    fig = plot_prior(prior, resolution=RES, save=tmp_path / "prior.png")
    assert fig.axes[0].get_title() == "Spatial prior"
    assert _is_png(tmp_path / "prior.png")
    dens = plot_prior(prior.to_density(), projection="aitoff", resolution=RES)
    assert dens.axes[0].name == "aitoff"


def test_plot_ts_map_variants(tmp_path, prior):
    ts = _ts_map()
    fig = plot_ts_map(ts, resolution=RES, mark="hottest", save=tmp_path / "ts.png")
    assert _is_png(tmp_path / "ts.png")
    marks = [line for line in fig.axes[0].get_lines() if line.get_label() == "hottest spot"]
    assert len(marks) == 1
    fig2 = plot_ts_map(ts, prior=prior, with_prior=True, clip_zero=True, mark=(150.0, 20.0), resolution=RES)
    fig2.savefig(tmp_path / "ts_prior.png")
    assert _is_png(tmp_path / "ts_prior.png")
    # without clipping the prior term makes far pixels very negative: still renders
    fig3 = plot_ts_map(ts, prior=prior, with_prior=True, clip_zero=False, resolution=RES)
    assert isinstance(fig3, Figure)
    with pytest.raises(ConfigError, match="needs a prior"):
        plot_ts_map(ts, with_prior=True)
    with pytest.raises(ConfigError):
        plot_ts_map(ts, mark="brightest")


def test_plot_posterior_map(tmp_path, prior):
    fig = plot_posterior_map(prior, levels=(0.5, 0.9, 0.99), mark=(150.0, 20.0), resolution=RES)
    fig.savefig(tmp_path / "post.png")
    assert _is_png(tmp_path / "post.png")
    assert fig.axes[0].get_title() == "Posterior source position"


def test_bad_arguments(prior):
    with pytest.raises(ConfigError, match="projection"):
        plot_sky_map(prior, projection="polar", resolution=RES)
    fig = Figure()
    flat_ax = fig.add_subplot()
    with pytest.raises(ConfigError, match="geographic"):
        plot_sky_map(prior, ax=flat_ax, resolution=RES)
    with pytest.raises(ConfigError, match=r"12 \* nside"):
        plot_sky_map(np.ones(100), resolution=RES)
    with pytest.raises(ConfigError, match="levels"):
        plot_sky_map(prior, contours=credible_levels(prior), levels=(50, 90), resolution=RES)
