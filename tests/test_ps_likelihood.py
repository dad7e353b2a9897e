"""The point-source likelihood and its fit on synthetic inputs (no data files needed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import interpolate

from bayesnu.irf.interp import PiecewisePoly, hermite_uniform, parabola_nearest
from bayesnu.irf.spatial import angular_distance, haversine, rayleigh_pdf, rayleigh_pdf_haversine
from bayesnu.likelihood.pointsource import (
    ONE_PLUS_ALPHA,
    PSEvents,
    PSInputs,
    _log1p_alpha,
    event_ratios,
    log_extended,
    log_lambda,
)
from bayesnu.likelihood.ps_fit import fit_ns_gamma

GAMMA = np.round(np.arange(0.9, 4.1 + 1e-9, 0.1), 10)


def synthetic_inputs(seed: int = 0, n_sig: int = 12, n_bkg: int = 400, n_seasons: int = 2, pad: int = 512):
    """Events around a source at (1.0, 0.3) rad: background flat, signal clustered and harder."""
    rng = np.random.default_rng(seed)
    src_ra, src_dec = 1.0, 0.3
    n = n_sig + n_bkg
    ra = np.concatenate([src_ra + rng.normal(0, 0.01, n_sig), src_ra + rng.uniform(-0.17, 0.17, n_bkg)])
    dec = np.concatenate([src_dec + rng.normal(0, 0.01, n_sig), src_dec + rng.uniform(-0.17, 0.17, n_bkg)])
    sigma = rng.uniform(0.005, 0.02, n)
    # Energy ratio grows with gamma-dependent hardness: signal events favour gamma ~ 2.
    hard = np.concatenate([rng.uniform(2, 4, n_sig), rng.uniform(0, 2, n_bkg)])
    er = np.exp(-0.5 * ((GAMMA[None, :] - 2.0) ** 2) / 0.5) * (0.2 + hard[:, None]) + 0.05
    season = rng.integers(0, n_seasons, n)
    n_total = np.array([20000.0, 30000.0][:n_seasons])
    valid = np.arange(pad) < n

    def padded(a, fill):
        out = np.full((pad, *a.shape[1:]), fill, dtype=float)
        out[:n] = a
        return out

    ev = PSEvents(
        ra=jnp.asarray(padded(ra, 0.0)),
        dec=jnp.asarray(padded(dec, 0.0)),
        sigma=jnp.asarray(padded(sigma, 1.0)),
        bkg_spatial=jnp.asarray(padded(np.full(n, 1.0 / (4 * np.pi)) * 3.0, 1.0)),
        energy_ratio=jnp.asarray(padded(er, 0.0)),
        season=jnp.asarray(padded(season, 0).astype(np.int32)),
        valid=jnp.asarray(valid),
    )
    n_out = n_total - np.bincount(season, minlength=n_seasons)
    log_yield = np.log(np.outer([1.0, 2.0][:n_seasons], 10.0 ** (-(GAMMA - 2.0))) * 1e12)
    return PSInputs(
        events=ev,
        n_total=jnp.asarray(n_total),
        n_outside=jnp.asarray(n_out),
        log_yield=jnp.asarray(log_yield),
        src_ra=jnp.asarray(src_ra),
        src_dec=jnp.asarray(src_dec),
        gamma0=0.9,
        dgamma=0.1,
        interp="hermite",
    )


def reference_log_lambda(inp: PSInputs, ns: float, gamma: float) -> float:
    """ln Lambda written out in numpy, independently of the JAX implementation."""
    ev = inp.events
    valid = np.asarray(ev.valid)
    ra, dec, sig = (np.asarray(a)[valid] for a in (ev.ra, ev.dec, ev.sigma))
    x = (
        np.sin((dec - float(inp.src_dec)) / 2) ** 2
        + np.cos(dec) * np.cos(float(inp.src_dec)) * np.sin((ra - float(inp.src_ra)) / 2) ** 2
    )
    psi = 2 * np.arcsin(np.sqrt(x))
    s = 1 / (2 * np.pi * np.sin(psi)) * psi / sig**2 * np.exp(-(psi**2) / (2 * sig**2))
    bsp = np.asarray(ev.bkg_spatial)[valid]
    er_tab = np.asarray(ev.energy_ratio)[valid]
    er = np.array([float(hermite_uniform(jnp.asarray(row), 0.9, 0.1, gamma)) for row in er_tab])
    ly = np.array(
        [float(hermite_uniform(jnp.asarray(row), 0.9, 0.1, gamma)) for row in np.asarray(inp.log_yield)]
    )
    f = np.exp(ly) / np.exp(ly).sum()
    season = np.asarray(ev.season)[valid]
    n_tot = np.asarray(inp.n_total)
    ns_s = ns * f
    r = s / bsp * er
    val = np.sum(np.log1p(ns_s[season] * (r - 1) / n_tot[season]))
    val += np.sum(np.asarray(inp.n_outside) * np.log1p(-ns_s / n_tot))
    return float(val)


@pytest.fixture(scope="module")
def inp() -> PSInputs:
    return synthetic_inputs()


@pytest.mark.parametrize(("ns", "gamma"), [(0.0, 2.0), (3.0, 1.7), (12.0, 2.05), (40.0, 3.33)])
def test_log_lambda_matches_reference(inp: PSInputs, ns: float, gamma: float) -> None:
    got = float(log_lambda({"ns": jnp.asarray(ns), "gamma": jnp.asarray(gamma)}, inp))
    assert got == pytest.approx(reference_log_lambda(inp, ns, gamma), rel=1e-10, abs=1e-10)


def test_extended_equals_ratio_at_profiled_background(inp: PSInputs) -> None:
    ns, gamma = 9.0, 2.2
    ly = hermite_uniform(inp.log_yield, inp.gamma0, inp.dgamma, gamma)
    f = jax.nn.softmax(ly)
    ext = log_extended(ns * f, inp.n_total - ns * f, jnp.asarray(gamma), inp)
    assert float(ext) == pytest.approx(float(log_lambda({"ns": ns, "gamma": gamma}, inp)), rel=1e-10)
    # A free background away from N - ns lowers the extended likelihood (the profile is a maximum).
    ext2 = log_extended(ns * f, 1.02 * (inp.n_total - ns * f), jnp.asarray(gamma), inp)
    assert float(ext2) < float(ext)


def test_taylor_continuation_is_c1() -> None:
    a0 = ONE_PLUS_ALPHA - 1.0
    eps = 1e-12
    lo, hi = float(_log1p_alpha(jnp.asarray(a0 - eps))), float(_log1p_alpha(jnp.asarray(a0 + eps)))
    assert lo == pytest.approx(hi, abs=1e-8)
    g = jax.grad(_log1p_alpha)
    assert float(g(jnp.asarray(a0 - eps))) == pytest.approx(float(g(jnp.asarray(a0 + eps))), rel=1e-6)
    assert np.isfinite(float(_log1p_alpha(jnp.asarray(-1.5))))


def test_fit_matches_brute_force(inp: PSInputs) -> None:
    res = jax.jit(fit_ns_gamma)(inp)
    ns_grid = np.linspace(0, 40, 401)
    g_grid = np.linspace(1.0, 4.0, 301)
    f = jax.jit(jax.vmap(jax.vmap(lambda n, g: log_lambda({"ns": n, "gamma": g}, inp), (None, 0)), (0, None)))
    vals = np.asarray(f(jnp.asarray(ns_grid), jnp.asarray(g_grid)))
    assert bool(res.converged)
    assert float(res.log_lambda) >= vals.max() - 1e-9
    i, j = np.unravel_index(np.argmax(vals), vals.shape)
    assert float(res.ns) == pytest.approx(ns_grid[i], abs=0.2)
    assert float(res.gamma) == pytest.approx(g_grid[j], abs=0.02)
    assert float(res.ts) == pytest.approx(2 * float(res.log_lambda))
    assert float(res.ts) > 9  # the injected cluster is significant


def test_fit_background_only_and_fixed_gamma() -> None:
    bkg = synthetic_inputs(seed=3, n_sig=0)
    res = jax.jit(fit_ns_gamma)(bkg)
    assert float(res.ns) >= 0 and float(res.ts) >= 0
    ll = jax.jit(jax.vmap(lambda n, g, i: log_lambda({"ns": n, "gamma": g}, i), (0, None, None)))
    grid = jnp.linspace(0, 20, 201)
    for g in (1.5, 2.5, 3.5):
        assert float(res.log_lambda) >= float(ll(grid, g, bkg).max()) - 1e-9
    sig = synthetic_inputs()
    fixed = jax.jit(lambda i: fit_ns_gamma(i, gamma_fixed=2.0))(sig)
    assert float(fixed.gamma) == 2.0 and bool(fixed.converged)
    assert float(fixed.log_lambda) >= float(ll(jnp.linspace(0, 40, 801), 2.0, sig).max()) - 1e-9


def test_fit_vmap_over_trials_equals_single() -> None:
    trials = [synthetic_inputs(seed=s, n_sig=s % 3 * 5) for s in range(4)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trials)
    batch = jax.jit(jax.vmap(fit_ns_gamma))(stacked)
    single_fit = jax.jit(fit_ns_gamma)
    for k, t in enumerate(trials):
        single = single_fit(t)
        assert float(batch.ts[k]) == pytest.approx(float(single.ts), abs=1e-8)
        assert float(batch.ns[k]) == pytest.approx(float(single.ns), abs=1e-6)


def test_fit_bounds() -> None:
    with pytest.raises(ValueError, match="inverted"):
        fit_ns_gamma(synthetic_inputs(), gamma_min=3.0, gamma_max=2.0)
    capped = jax.jit(lambda i: fit_ns_gamma(i, ns_max=5.0))(synthetic_inputs(n_sig=60))
    assert float(capped.ns) == pytest.approx(5.0)


def test_position_gradient_finite_at_event() -> None:
    inp = synthetic_inputs()
    ra0, dec0 = float(inp.events.ra[0]), float(inp.events.dec[0])

    def f(pos):
        return log_lambda({"ns": 5.0, "gamma": 2.0, "ra": pos[0], "dec": pos[1]}, inp)

    g = jax.grad(f)(jnp.array([ra0, dec0]))
    assert np.all(np.isfinite(np.asarray(g)))
    r = event_ratios(inp, jnp.asarray(2.0), jnp.asarray(ra0), jnp.asarray(dec0))
    assert np.all(np.isfinite(np.asarray(r)))


def test_spatial_pdf() -> None:
    sigma = 0.01
    # Normalised on the sphere (numerical integral over psi).
    psi = np.linspace(0, 0.3, 200001)
    dens = np.asarray(rayleigh_pdf(jnp.asarray(psi), sigma))
    assert np.trapezoid(dens * 2 * np.pi * np.sin(psi), psi) == pytest.approx(1.0, rel=1e-6)
    assert float(rayleigh_pdf(jnp.asarray(0.0), sigma)) == pytest.approx(1 / (2 * np.pi * sigma**2))
    a = angular_distance(jnp.asarray(0.1), jnp.asarray(0.2), jnp.asarray(0.3), jnp.asarray(-0.4))
    cos = np.sin(0.2) * np.sin(-0.4) + np.cos(0.2) * np.cos(-0.4) * np.cos(0.2)
    assert float(a) == pytest.approx(np.arccos(cos), rel=1e-12)
    h = haversine(jnp.asarray(0.1), jnp.asarray(0.2), jnp.asarray(0.1), jnp.asarray(0.2))
    assert float(rayleigh_pdf_haversine(h, sigma)) == pytest.approx(1 / (2 * np.pi * sigma**2))


def test_interpolants() -> None:
    x = np.linspace(0.9, 4.1, 33)
    quad = 0.3 * x**2 - 1.1 * x + 2.0
    for g in (1.0, 1.234, 2.55, 3.999):
        exact = 0.3 * g**2 - 1.1 * g + 2.0
        assert float(hermite_uniform(jnp.asarray(quad), 0.9, 0.1, g)) == pytest.approx(exact, rel=1e-12)
        assert float(parabola_nearest(jnp.asarray(quad), 0.9, 0.1, g)) == pytest.approx(exact, rel=1e-12)
    # Hermite is C1: left and right derivatives agree at a node.
    vals = jnp.asarray(np.sin(x))
    d = jax.grad(lambda t: hermite_uniform(vals, 0.9, 0.1, t))
    assert float(d(2.0 - 1e-9)) == pytest.approx(float(d(2.0 + 1e-9)), rel=1e-6)
    xs = np.linspace(0, 1, 9)
    ys = np.exp(np.stack([xs, 2 * xs]))
    for spl in (
        interpolate.PchipInterpolator(xs, ys.T, axis=0),
        interpolate.make_interp_spline(xs, ys.T, k=3),
    ):
        pp = (
            PiecewisePoly.from_scipy(spl)
            if not isinstance(spl, interpolate.BSpline)
            else PiecewisePoly.from_bspline(spl)
        )
        t = np.linspace(0, 1, 57)
        np.testing.assert_allclose(
            np.asarray(pp(t)).T if np.asarray(pp(t)).shape[0] == 2 else pp(t), spl(t), rtol=1e-12
        )
        np.testing.assert_allclose(np.asarray(pp(jnp.asarray(t))), np.asarray(pp(t)), rtol=1e-14)


def test_hermite_weights_and_analytic_derivatives(inp: PSInputs) -> None:
    """The fit's closed-form value/gradient/Hessian equal autodiff of ln Lambda."""
    from bayesnu.irf.interp import hermite_uniform_d2, hermite_weights
    from bayesnu.likelihood.pointsource import event_ratios_spatial
    from bayesnu.likelihood.ps_fit import _derivs_hermite

    table = np.asarray(inp.events.energy_ratio)
    vals = jnp.asarray(np.sin(np.linspace(0, 3, 33)))
    for g in (0.95, 1.234, 2.0, 3.05, 4.07):
        w0, w1, w2 = hermite_weights(table.shape[1], 0.9, 0.1, g)
        np.testing.assert_allclose(table @ np.asarray(w0), hermite_uniform(jnp.asarray(table), 0.9, 0.1, g),
                                   rtol=1e-12, atol=1e-14)  # fmt: skip
        v, d1, d2 = hermite_uniform_d2(vals, 0.9, 0.1, g)
        f = lambda t: hermite_uniform(vals, 0.9, 0.1, t)  # noqa: E731
        assert float(v) == pytest.approx(float(f(g)), rel=1e-12)
        assert float(d1) == pytest.approx(float(jax.grad(f)(g)), rel=1e-9, abs=1e-12)
        assert float(d2) == pytest.approx(float(jax.grad(jax.grad(f))(g)), rel=1e-9, abs=1e-9)
        assert float(vals @ w1) == pytest.approx(float(d1), rel=1e-9, abs=1e-12)
        assert float(vals @ w2) == pytest.approx(float(d2), rel=1e-9, abs=1e-9)
    r_sp = event_ratios_spatial(inp)
    for ns, g in ((0.0, 2.0), (5.0, 1.73), (20.0, 2.61)):
        x = jnp.array([ns, g])
        val, grad, hess = _derivs_hermite(inp, inp.events.energy_ratio, 0.9, r_sp, x)
        fn = lambda y: log_lambda({"ns": y[0], "gamma": y[1]}, inp)  # noqa: E731
        assert float(val) == pytest.approx(float(fn(x)), rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(grad, jax.grad(fn)(x), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(hess, jax.hessian(fn)(x), rtol=1e-7, atol=1e-9)
