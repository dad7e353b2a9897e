r"""Maximum-likelihood fit of (ns, gamma) for the point-source likelihood, inside ``jit``.

One algorithm with bounded iteration counts, so that the same code runs for one fit,
under ``vmap`` for pseudo-experiments and over pixels for sky scans:

1. **Profile on the gamma nodes.** For fixed :math:`\gamma`, :math:`\ln\Lambda` is a sum
   of :math:`m_i L(n_s b_i)` with :math:`L = \ln(1+\cdot)` (continued by SkyLLH's
   expansion) and coefficients :math:`b_i` that do not depend on :math:`n_s`: it is
   concave in :math:`n_s`, so its maximum on :math:`[0, n_{s,\max}]` is unique. A
   bracketed Newton iteration with analytic derivatives (bisection whenever a Newton
   step leaves the bracket) finds it at every node of the gamma grid at once. This is
   robust against the :math:`n_s = 0` boundary (a non-positive slope at 0 gives 0)
   and against several local maxima in :math:`\gamma` (all nodes are tried).
2. **Polish.** From the best node, Newton steps in :math:`(n_s, \gamma)` with the exact
   Hessian (autodiff), projected onto the box and accepted only if they increase
   :math:`\ln\Lambda` (step halving otherwise; gradient steps when the Hessian is not
   negative definite), until the projected gradient vanishes.

``converged`` reports whether the projected gradient vanished at the end.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesnu.irf.interp import hermite_uniform_d2, hermite_weights
from bayesnu.likelihood.pointsource import (
    ONE_PLUS_ALPHA,
    PSInputs,
    event_ratios,
    event_ratios_spatial,
    interp_gamma,
    log_lambda_from_ratios,
    season_fractions,
)


def _derivs_hermite(
    inputs: PSInputs, window: jax.Array, win_g0: jax.Array, r_sp: jax.Array, x: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ln Lambda, its gradient and Hessian in (ns, gamma), analytically in one pass.

    With :math:`\\ln\\Lambda = \\sum_i m_i\\ln(1+n_s b_i(\\gamma))`,
    :math:`b = F_s(r-1)` (events) or :math:`-F_s` (unselected), :math:`F_s = f_s/N_s`:
    :math:`\\partial_{n_s} = \\sum m b L'`, :math:`\\partial_\\gamma = \\sum m n_s b' L'`,
    :math:`\\partial^2_{n_s} = \\sum m b^2 L''`,
    :math:`\\partial_{n_s}\\partial_\\gamma = \\sum m(b' L' + n_s b b' L'')`,
    :math:`\\partial^2_\\gamma = \\sum m(n_s b'' L' + n_s^2 b'^2 L'')`, :math:`L'=1/(1+\\alpha)`,
    :math:`L'' = -L'^2`. Valid when SkyLLH's expansion branch cannot be reached.
    """
    ns, gamma = x[0], x[1]
    ev = inputs.events
    w0, w1, w2 = hermite_weights(window.shape[-1], win_g0, inputs.dgamma, gamma)
    re, re1, re2 = window @ w0, window @ w1, window @ w2
    g0 = inputs.gamma0 if inputs.yield_g0 is None else inputs.yield_g0
    dg = inputs.dgamma if inputs.yield_dg is None else inputs.yield_dg
    ly, ly1, ly2 = hermite_uniform_d2(inputs.log_yield, g0, dg, gamma)
    f = jax.nn.softmax(ly)
    mu1 = jnp.sum(f * ly1)
    lnf1 = ly1 - mu1
    lnf2 = ly2 - (jnp.sum(f * (ly2 + ly1 * ly1)) - mu1 * mu1)
    big_f = f / inputs.n_total
    big_f1 = big_f * lnf1
    big_f2 = big_f * (lnf2 + lnf1 * lnf1)
    s = ev.season
    r, r1, r2 = r_sp * re, r_sp * re1, r_sp * re2
    m = jnp.where(ev.valid, 1.0, 0.0)
    b = big_f[s] * (r - 1.0)
    b1 = big_f1[s] * (r - 1.0) + big_f[s] * r1
    b2 = big_f2[s] * (r - 1.0) + 2.0 * big_f1[s] * r1 + big_f[s] * r2
    # Unselected events of each season: b = -F_s.
    b = jnp.concatenate([b, -big_f])
    b1 = jnp.concatenate([b1, -big_f1])
    b2 = jnp.concatenate([b2, -big_f2])
    m = jnp.concatenate([m, inputs.n_outside])
    alpha = ns * b
    lp = 1.0 / (1.0 + alpha)
    lpp = -lp * lp
    val = jnp.sum(m * jnp.log1p(alpha))
    g = jnp.stack([jnp.sum(m * b * lp), jnp.sum(m * ns * b1 * lp)])
    h_nn = jnp.sum(m * b * b * lpp)
    h_ng = jnp.sum(m * (b1 * lp + ns * b * b1 * lpp))
    h_gg = jnp.sum(m * (ns * b2 * lp + ns * ns * b1 * b1 * lpp))
    return val, g, jnp.array([[h_nn, h_ng], [h_ng, h_gg]])


#: Largest number of step halvings in the polish's line search.
_MAX_HALVINGS = 12


class PSFit(NamedTuple):
    """Result of :func:`fit_ns_gamma` (JAX scalars)."""

    ns: jax.Array
    gamma: jax.Array
    log_lambda: jax.Array
    ts: jax.Array
    converged: jax.Array
    grad_norm: jax.Array


class PSNodes(NamedTuple):
    """ns profiled at fixed gamma nodes (the first stage of :func:`fit_ns_gamma`).

    Attributes
    ----------
    gamma
        ``(n,)`` spectral indices of the nodes.
    ns, log_lambda
        ``(n,)`` profiled ns and ln Lambda at each node.
    slope, curvature
        ``(n,)`` first and second derivative of ln Lambda in ns at the profiled ns (the
        slope is zero unless ns sits on a bound).
    """

    gamma: jax.Array
    ns: jax.Array
    log_lambda: jax.Array
    slope: jax.Array
    curvature: jax.Array


def _ns_derivs(b: jax.Array, m: jax.Array, ns: jax.Array) -> tuple[jax.Array, jax.Array]:
    """First and second derivative in ns of sum m L(ns b) (SkyLLH's continuation included)."""
    _, l1, l2 = _l_derivs(ns * b)
    return jnp.sum(m * b * l1), jnp.sum(m * b * b * l2)


def _log_diff_ndtr(upper: jax.Array, lower: jax.Array) -> jax.Array:
    """ln(Phi(upper) - Phi(lower)) for upper > lower, accurate in both tails."""
    # Reflect to the left tail, where log_ndtr is accurate.
    flip = lower > 0
    u = jnp.where(flip, -lower, upper)
    lo = jnp.where(flip, -upper, lower)
    lu = jax.scipy.special.log_ndtr(u)
    ll = jax.scipy.special.log_ndtr(lo)
    return lu + jnp.log1p(-jnp.exp(jnp.minimum(ll - lu, -1e-300)))


def log_marginal(nodes: PSNodes, ns_max: float, gamma_min: float, gamma_max: float) -> jax.Array:
    r"""ln of the likelihood ratio averaged over flat priors on ns and gamma (a Bayes factor).

    .. math::

        \ln B = \ln\frac{1}{n_{s,\max}(\gamma_{\max}-\gamma_{\min})}
        \int_{\gamma_{\min}}^{\gamma_{\max}}\!\int_0^{n_{s,\max}}
        \Lambda(n_s, \gamma)\,dn_s\,d\gamma,

    with the ns integral at each node from a second-order expansion of
    :math:`\ln\Lambda` about the profiled ns (value :math:`v`, slope :math:`a`,
    curvature :math:`-c`), truncated to the prior range,

    .. math::

        \int_0^{n_{s,\max}} e^{v + a(n-\hat n) - c(n-\hat n)^2/2}\,dn =
        e^{v + a^2/2c}\sqrt{2\pi/c}\,[\Phi(\sqrt c(n_{s,\max}-m)) - \Phi(-\sqrt c\,m)],
        \quad m = \hat n + a/c,

    and the gamma integral by the trapezoidal rule over the nodes (one node: gamma fixed,
    no gamma average). ``ln B`` is exact up to the expansion error; with
    :math:`\Lambda \equiv 1` it is 0.
    """
    c = jnp.maximum(-nodes.curvature, 1e-12)
    mode = nodes.ns + nodes.slope / c
    sq = jnp.sqrt(c)
    log_int = (
        nodes.log_lambda
        + 0.5 * nodes.slope**2 / c
        + 0.5 * jnp.log(2 * jnp.pi / c)
        + _log_diff_ndtr(sq * (ns_max - mode), -sq * mode)
    )
    n = nodes.gamma.shape[0]
    if n == 1:
        return log_int[0] - jnp.log(ns_max)
    w = jnp.full(n, 1.0).at[0].set(0.5).at[-1].set(0.5) * (nodes.gamma[1] - nodes.gamma[0])
    return jax.nn.logsumexp(log_int, b=w) - jnp.log(ns_max) - jnp.log(gamma_max - gamma_min)


def _coefficients(inputs: PSInputs, gamma: jax.Array, ra, dec) -> dict[str, jax.Array]:
    """Arguments ``b``, ``m`` of :func:`profile_ns` at fixed gamma: ln Lambda(ns) = sum m L(ns b)."""
    ev = inputs.events
    frac = season_fractions(inputs, gamma)
    r = event_ratios(inputs, gamma, ra, dec)
    b_ev = frac[ev.season] * (r - 1.0) / inputs.n_total[ev.season]
    m_ev = jnp.where(ev.valid, 1.0, 0.0)
    b_out = -frac / inputs.n_total
    return {
        "b": jnp.concatenate([jnp.where(ev.valid, b_ev, 0.0), b_out]),
        "m": jnp.concatenate([m_ev, inputs.n_outside]),
    }


def _l_derivs(alpha: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """L(alpha), L'(alpha), L''(alpha) with SkyLLH's second-order continuation."""
    a0 = ONE_PLUS_ALPHA - 1.0
    stable = alpha > a0
    safe = jnp.where(stable, alpha, 0.0)
    inv = 1.0 / (1.0 + safe)
    t = (alpha - a0) / ONE_PLUS_ALPHA
    l0 = jnp.where(stable, jnp.log1p(safe), jnp.log1p(a0) + t - 0.5 * t * t)
    l1 = jnp.where(stable, inv, (1.0 - t) / ONE_PLUS_ALPHA)
    l2 = jnp.where(stable, -inv * inv, -1.0 / ONE_PLUS_ALPHA**2)
    return l0, l1, l2


def _needs_expansion(inputs: PSInputs, ns_max: float) -> bool:
    """Whether SkyLLH's expansion branch can be reached: 1 + ns b <= 1e-3 needs ns >= 0.999 N."""
    return inputs.n_total_min is None or ns_max >= (1.0 - ONE_PLUS_ALPHA) * inputs.n_total_min


def profile_ns(
    b: jax.Array,
    m: jax.Array,
    ns_max: float,
    max_iter: int = 60,
    fixed_iter: int = 8,
    expansion: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Maximise sum m L(ns b) over ns in [0, ns_max]; returns (ns, value).

    ``fixed_iter`` unconditional steps (cheap under ``vmap``, where a ``while_loop``
    runs until its slowest lane is done) are followed by a ``while_loop`` that only
    iterates if some lane has not converged yet, up to ``max_iter`` steps in all.
    ``expansion=False`` skips SkyLLH's expansion branch in the derivatives, valid when
    ``1 + ns b > 1e-3`` for every ns in range (e.g. ``ns_max < 0.999 N``).
    """

    a0 = ONE_PLUS_ALPHA - 1.0
    inv_c = 1.0 / ONE_PLUS_ALPHA
    mb = m * b

    def derivs(ns):
        # q = b L'(ns b); L'' = -L'^2 on the log branch, -1/c^2 on the expansion.
        alpha = ns * b
        if not expansion:
            q = b / (1.0 + alpha)
            return jnp.sum(m * q), -jnp.sum(m * q * q), jnp.sum(jnp.abs(m * q))
        stable = alpha > a0
        l1 = jnp.where(
            stable, 1.0 / (1.0 + jnp.where(stable, alpha, 0.0)), (1.0 - (alpha - a0) * inv_c) * inv_c
        )
        q = b * l1
        l2b2 = jnp.where(stable, -q * q, -((b * inv_c) ** 2))
        return jnp.sum(m * q), jnp.sum(m * l2b2), jnp.sum(jnp.abs(m * q))

    d0 = jnp.sum(mb)
    # Start at the first Newton step from ns = 0 (exact for the log branch).
    first = d0 / jnp.maximum(jnp.sum(mb * b), 1e-300)

    def cond(state):
        _, _, _, step, it = state
        return (it < max_iter) & (jnp.abs(step) > 1e-12)

    def body(state):
        ns, lo, hi, step, it = state
        done = jnp.abs(step) <= 1e-12
        d1, d2, scale = derivs(ns)
        # The slope vanishes to rounding (a sum of terms of size ``scale``): converged.
        # Without this a lane can keep stepping by rounding noise, and under vmap the
        # while loop runs until its slowest lane is done.
        done = done | (jnp.abs(d1) <= 1e-14 * scale)
        lo = jnp.where(d1 > 0, ns, lo)
        hi = jnp.where(d1 > 0, hi, ns)
        newton = ns - d1 / jnp.where(d2 < 0, d2, -1.0)
        ok = (d2 < 0) & (newton >= lo) & (newton <= hi)
        new = jnp.where(ok, newton, 0.5 * (lo + hi))
        new = jnp.where(done, ns, new)
        return new, lo, hi, jnp.where(done, 0.0, (new - ns) / (1.0 + jnp.abs(ns))), it + 1

    # A non-positive slope at 0 means the maximum is at ns = 0: no iteration needed.
    start = jnp.where(d0 > 0, jnp.clip(first, 1e-6 * ns_max, 0.5 * ns_max), 0.0)
    init = (start, jnp.asarray(0.0), jnp.asarray(float(ns_max)), jnp.where(d0 > 0, 1.0, 0.0), jnp.asarray(0))
    state = jax.lax.fori_loop(0, fixed_iter, lambda _, s: body(s), init)
    ns, _, _, _, _ = jax.lax.while_loop(cond, body, state)
    ns = jnp.where(d0 > 0, ns, 0.0)
    return ns, jnp.sum(m * _l_derivs(ns * b)[0])


def fit_ns_gamma(
    inputs: PSInputs,
    *,
    ns_max: float = 1000.0,
    gamma_min: float = 1.0,
    gamma_max: float = 4.0,
    gamma_fixed: float | None = None,
    ra: jax.Array | None = None,
    dec: jax.Array | None = None,
    node_step: int = 2,
    max_polish: int = 30,
    profile_iter: tuple[int, int] = (8, 60),
) -> PSFit:
    """Maximise :math:`\\ln\\Lambda(n_s, \\gamma)` (see :func:`fit_ns_gamma_nodes`)."""
    return fit_ns_gamma_nodes(
        inputs,
        ns_max=ns_max,
        gamma_min=gamma_min,
        gamma_max=gamma_max,
        gamma_fixed=gamma_fixed,
        ra=ra,
        dec=dec,
        node_step=node_step,
        max_polish=max_polish,
        profile_iter=profile_iter,
    )[0]


def fit_ns_gamma_nodes(
    inputs: PSInputs,
    *,
    ns_max: float = 1000.0,
    gamma_min: float = 1.0,
    gamma_max: float = 4.0,
    gamma_fixed: float | None = None,
    ra: jax.Array | None = None,
    dec: jax.Array | None = None,
    node_step: int = 2,
    max_polish: int = 30,
    profile_iter: tuple[int, int] = (8, 60),
) -> tuple[PSFit, PSNodes]:
    """Maximise :math:`\\ln\\Lambda(n_s, \\gamma)` on :math:`[0, n_{s,max}]` x [gamma_min, gamma_max].

    Parameters
    ----------
    inputs
        Likelihood inputs.
    ns_max
        Upper bound of ns (SkyLLH's default 1000).
    gamma_min, gamma_max
        Bounds of the spectral index (static).
    gamma_fixed
        Fit ns only, at this spectral index.
    ra, dec
        Source position [rad] (default: the inputs').
    node_step
        Profile every ``node_step``-th node of the gamma table (default 2, i.e. every
        0.2 in gamma for the default table) before polishing.
    max_polish
        Maximum number of two-dimensional Newton steps.
    profile_iter
        ``(fixed_iter, max_iter)`` of :func:`profile_ns` at the nodes (gamma free only;
        with gamma fixed the profile is the result and always runs to convergence). Keep
        the nodes converged: the best node chooses the polish interval, and
        :func:`log_marginal` expands about the nodes' ns (four steps picked the wrong
        node for a strong source and biased ln B for a weak one).

    Returns
    -------
    PSFit
        ns, gamma, ln Lambda, TS, converged flag and final projected-gradient norm.
    PSNodes
        The profile stage (ns, ln Lambda and its ns-derivatives at each gamma node; one
        node when gamma is fixed), e.g. for :func:`log_marginal`.
    """
    if gamma_fixed is not None:
        g = jnp.asarray(gamma_fixed, dtype=float)
        coef = _coefficients(inputs, g, ra, dec)
        ns, val = profile_ns(**coef, ns_max=ns_max, expansion=_needs_expansion(inputs, ns_max))
        d1, d2 = _ns_derivs(coef["b"], coef["m"], ns)
        proj = jnp.where(((ns <= 0) & (d1 < 0)) | ((ns >= ns_max) & (d1 > 0)), 0.0, d1)
        conv = jnp.abs(proj) * (1.0 + ns) < 1e-6
        one = PSNodes(g[None], ns[None], val[None], d1[None], d2[None])
        return PSFit(ns, g, val, 2.0 * jnp.sign(ns) * val, conv, jnp.abs(proj)), one

    if not gamma_min < gamma_max:
        raise ValueError(f"gamma bounds inverted: gamma_min={gamma_min} >= gamma_max={gamma_max}")
    step = node_step * inputs.dgamma
    n_nodes = max(2, round((gamma_max - gamma_min) / step) + 1)
    nodes = jnp.linspace(gamma_min, gamma_max, n_nodes)
    k0 = (gamma_min - inputs.gamma0) / inputs.dgamma
    on_grid = abs(k0 - round(k0)) < 1e-9 and abs((n_nodes - 1) * step - (gamma_max - gamma_min)) < 1e-9
    k_max = inputs.events.energy_ratio.shape[-1] - 1
    sub = 1 if inputs.yield_dg is None else round(inputs.dgamma / inputs.yield_dg)
    if on_grid and round(k0) >= 0 and round(k0) + (n_nodes - 1) * node_step <= k_max:
        # Nodes are table nodes: take the tabulated columns, spatial ratios computed once.
        ks = round(k0) + node_step * jnp.arange(n_nodes)
        ev = inputs.events
        r_sp = event_ratios_spatial(inputs, ra, dec)
        r_nodes = r_sp[None, :] * ev.energy_ratio[:, ks].T  # (n_nodes, M)
        frac_nodes = jax.nn.softmax(inputs.log_yield[:, ks * sub].T, axis=-1)  # (n_nodes, S)
        m = jnp.concatenate([jnp.where(ev.valid, 1.0, 0.0), inputs.n_outside])

        def node_fit(r, frac):
            b_ev = frac[ev.season] * (r - 1.0) / inputs.n_total[ev.season]
            b = jnp.concatenate([jnp.where(ev.valid, b_ev, 0.0), -frac / inputs.n_total])
            ns, val = profile_ns(b, m, ns_max, expansion=_needs_expansion(inputs, ns_max),
                                 fixed_iter=profile_iter[0], max_iter=profile_iter[1])  # fmt: skip
            return ns, val, *_ns_derivs(b, m, ns)

        ns_nodes, val_nodes, d1_nodes, d2_nodes = jax.vmap(node_fit)(r_nodes, frac_nodes)
    else:

        def node_fit_interp(g):
            coef = _coefficients(inputs, g, ra, dec)
            ns, val = profile_ns(**coef, ns_max=ns_max, expansion=_needs_expansion(inputs, ns_max),
                                 fixed_iter=profile_iter[0], max_iter=profile_iter[1])  # fmt: skip
            return ns, val, *_ns_derivs(coef["b"], coef["m"], ns)

        ns_nodes, val_nodes, d1_nodes, d2_nodes = jax.vmap(node_fit_interp)(nodes)
    node_res = PSNodes(nodes, ns_nodes, val_nodes, d1_nodes, d2_nodes)
    k = jnp.argmax(val_nodes)
    x0 = jnp.stack([ns_nodes[k], nodes[k]])
    # The maximum lies between the best node's neighbours: polish inside that interval.
    g_lo = jnp.maximum(gamma_min, nodes[k] - step)
    g_hi = jnp.minimum(gamma_max, nodes[k] + step)
    lo = jnp.stack([jnp.asarray(0.0), g_lo])
    hi = jnp.stack([jnp.asarray(float(ns_max)), g_hi])
    scale_of = lambda x: jnp.array([jnp.maximum(1.0, x[0]), 1.0])  # noqa: E731

    # The spatial ratios do not depend on (ns, gamma): compute them once for the polish.
    r_sp_fixed = event_ratios_spatial(inputs, ra, dec)
    valid = inputs.events.valid
    # A window of the energy-ratio table around the interval (its gradients stay small).
    # The pieces used need the nodes kb-node_step-1 .. kb+node_step+1, all inside the
    # window and none on its edges (unless the window edge is the table edge), so the
    # window's Hermite slopes equal the full table's there.
    table = inputs.events.energy_ratio
    n_win = min(2 * node_step + 4, table.shape[-1])
    kb = jnp.round((nodes[k] - inputs.gamma0) / inputs.dgamma).astype(jnp.int32)
    start = jnp.clip(kb - node_step - 1, 0, table.shape[-1] - n_win)
    window = jax.lax.dynamic_slice_in_dim(table, start, n_win, axis=1)
    win_g0 = inputs.gamma0 + start * inputs.dgamma

    def f(x):
        if inputs.interp == "parabola":
            r_e = interp_gamma(inputs, table, x[1])
        else:
            r_e = window @ hermite_weights(window.shape[-1], win_g0, inputs.dgamma, x[1])[0]
        ratios = jnp.where(valid, r_sp_fixed * r_e, 0.0)
        return log_lambda_from_ratios(inputs, x[0], season_fractions(inputs, x[1]), ratios)

    analytic = inputs.interp != "parabola" and not _needs_expansion(inputs, ns_max)
    if analytic:
        value_grad_hess = partial(_derivs_hermite, inputs, window, win_g0, r_sp_fixed)
    else:

        def value_grad_hess(x):
            return f(x), jax.grad(f)(x), jax.hessian(f)(x)

    def projected(x, g):
        return jnp.where(((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0)), 0.0, g)

    def gnorm(x, g):
        return jnp.linalg.norm(projected(x, g) * scale_of(x))

    def cond(state):
        x, fx, g, _, it = state
        return (it < max_polish) & (gnorm(x, g) > 1e-7 * (1.0 + jnp.abs(fx))) & (x[0] > 0)

    def body(state):
        x, fx, g, h, it = state
        free = ~(((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0)))
        hm = jnp.where(free[:, None] & free[None, :], h, -jnp.eye(2))
        gm = jnp.where(free, g, 0.0)
        det = hm[0, 0] * hm[1, 1] - hm[0, 1] * hm[1, 0]
        neg_def = (hm[0, 0] < 0) & (det > 0)
        # Newton step -H^{-1} g of the 2x2 system, written out (no batched LAPACK call).
        safe_det = jnp.where(neg_def, det, 1.0)
        newton = (
            -jnp.stack([hm[1, 1] * gm[0] - hm[0, 1] * gm[1], hm[0, 0] * gm[1] - hm[1, 0] * gm[0]]) / safe_det
        )
        sc = scale_of(x)
        grad_step = gm * sc * sc / (jnp.linalg.norm(gm * sc) + 1e-300) * 0.1
        d = jnp.where(neg_def, newton, grad_step)
        # Newton decrement: the predicted gain is below the rounding of ln Lambda, so a
        # line search could not tell better from worse (and under vmap would keep every
        # lane halving): take the better of x and x + d and stop.
        tiny = neg_def & (0.5 * jnp.dot(gm, d) <= 1e-13 * (1.0 + jnp.abs(fx)))

        def ls_cond(s):
            _, _, fc, n = s
            return (fc <= fx) & (n < _MAX_HALVINGS)

        def ls_body(s):
            t, _, _, n = s
            cand = jnp.clip(x + t * d, lo, hi)
            return 0.5 * t, cand, f(cand), n + 1

        cand0 = jnp.clip(x + d, lo, hi)
        # Under vmap the body also runs for lanes whose loop has ended: give them no
        # line search, or the slowest of them sets the number of halvings for all.
        n0 = jnp.where(tiny | ~cond(state), _MAX_HALVINGS, 0)
        _, cand, fc, _ = jax.lax.while_loop(ls_cond, ls_body, (0.5, cand0, f(cand0), n0))
        better = fc > fx
        x_new = jnp.where(better, cand, x)
        f_new, g_new, h_new = value_grad_hess(x_new)
        # No ascent possible (or none measurable): stop by forcing the counter to its limit.
        return x_new, f_new, g_new, h_new, jnp.where(better & ~tiny, it + 1, max_polish)

    f0, g0, h0 = value_grad_hess(x0)
    xf, ff, gf, _, _ = jax.lax.while_loop(cond, body, (x0, f0, g0, h0, jnp.asarray(0)))
    gn = jnp.where(xf[0] > 0, gnorm(xf, gf), 0.0)
    conv = gn <= 1e-5 * (1.0 + jnp.abs(ff))
    return PSFit(xf[0], xf[1], ff, 2.0 * jnp.sign(xf[0]) * ff, conv, gn), node_res
