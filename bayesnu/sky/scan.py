r"""All-sky scans of the point-source likelihood: one vectorised fit per HEALPix pixel.

For every pixel of a HEALPix map (RING scheme, equatorial), the best-fit :math:`n_s`
(and :math:`\gamma`, or :math:`\gamma` fixed) and :math:`TS` of the point-source
likelihood of :mod:`bayesnu.likelihood.pointsource` at the pixel centre, computed by the
same :func:`~bayesnu.likelihood.ps_fit.fit_ns_gamma_nodes` that
:meth:`~bayesnu.analyses.point_source.PointSourceAnalysis.fit` uses, plus the marginal
likelihood ratio over flat priors (:func:`~bayesnu.likelihood.ps_fit.log_marginal`) for
posteriors over the source position.

Cost far below pixels x events:

1. **Reach per event** (once). An event enters :math:`\ln\Lambda` only through
   :math:`\ln(1 + c_s(R_i - 1))`; where :math:`R_i < \tau = 10^{-6}` at every
   :math:`\gamma` it may be counted with the unselected events at an error below
   :math:`c_s\tau` (as in :mod:`bayesnu.analyses.ps_trials`). With an upper bound
   of the energy ratio over all declinations and spectral indices (the envelope of the
   signal energy PDFs of every response bin the scan touches, over the background
   energy PDF of the event), each event gets a reach angle :math:`\psi_i` beyond which
   its ratio stays below :math:`\tau` anywhere on the sky.
2. **Bands per ring.** The pixels of one HEALPix ring share a declination
   :math:`\delta_r` and hence the response tables (signal energy PDF, detector yield).
   The ring's band holds the events with :math:`|\delta_i - \delta_r| < \psi_i`, with
   the half-width in right ascension :math:`\Delta\alpha_i` within which they are in
   reach of the ring.
3. **Pixels in a ring** are fitted by one ``vmap``: each pixel keeps the band events
   with :math:`|\alpha_i - \alpha_p| < \Delta\alpha_i`, compacted into a static buffer
   (prefix sum, no sort), and maximises the likelihood with the shared fit. The band is
   sorted by right ascension and extended across 0 / 2 pi (copies shifted by
   :math:`\pm 2\pi`), so a pixel examines one contiguous window of the band instead of
   all of it. Energy-ratio tables are computed on the device once per ring.

Static shapes (band and window padded to one size for the whole scan, at most three
buffer sizes sized from the exact per-pixel counts, pixels in batches of
``pixel_batch``) keep compilations to a handful; compile time is measured apart
(``compile_s``) from the scan (``wall_s``).

The right ascensions are an argument of the kernel, so a background trial of a
time-integrated analysis (all RA scrambled) reuses the bands unchanged.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import healpy as hp
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from scipy import stats

from bayesnu.analyses.ps_inputs import YIELD_SUBDIVISION, SeasonModel, energy_ratio_values
from bayesnu.analyses.ps_trials import TAU, compact_events, reach_angle, reach_half_width
from bayesnu.data.atomic import atomic_path
from bayesnu.errors import ConfigError, DataFormatError
from bayesnu.irf.energy import SignalEnergyPDF
from bayesnu.likelihood.pointsource import PSInputs
from bayesnu.likelihood.ps_fit import fit_ns_gamma_nodes, log_marginal
from bayesnu.parallel import progress_bar

__all__ = ["RingBand", "ScanSettings", "SkyScan", "SkyScanner", "scan_pixels"]

_PAD_FILL = {"dec": 0.0, "sigma": 1.0, "bsp": 1.0, "log10_e": 0.0, "b_energy": 1.0}


@dataclass(frozen=True)
class RingBand:
    """Events within reach of one declination (a JAX pytree; padded to a static length).

    Attributes
    ----------
    index
        ``(M,)`` index of each event in the scanner's concatenated event list (its right
        ascension is looked up there, so scrambled data reuse the band).
    dec, sigma
        Declination and AngErr [rad].
    bkg_spatial
        Background spatial PDF [1/sr].
    log10_e, b_energy
        log10(E_reco/GeV) and the background energy PDF of each event.
    season
        Season index.
    valid
        False for padding.
    dra
        Half-width in RA [rad] within which the event is in reach of the ring.
    ra_shift
        Added to the event's right ascension (0, or +-2 pi for the copies that extend an
        RA-sorted band across 0 / 2 pi, see :meth:`SkyScanner.band`).
    signal_energy
        Signal energy PDF of every season at the ring's declination.
    log_yield
        ``(S, K')`` ln detector yield per unit Phi0 at the ring's declination.
    dec_ring
        Declination of the ring [rad].
    """

    index: jax.Array
    dec: jax.Array
    sigma: jax.Array
    bkg_spatial: jax.Array
    log10_e: jax.Array
    b_energy: jax.Array
    season: jax.Array
    valid: jax.Array
    dra: jax.Array
    ra_shift: jax.Array
    signal_energy: tuple[SignalEnergyPDF, ...]
    log_yield: jax.Array
    dec_ring: jax.Array


jax.tree_util.register_dataclass(
    RingBand,
    data_fields=[
        "index",
        "dec",
        "sigma",
        "bkg_spatial",
        "log10_e",
        "b_energy",
        "season",
        "valid",
        "dra",
        "ra_shift",
        "signal_energy",
        "log_yield",
        "dec_ring",
    ],
    meta_fields=[],
)


@dataclass(frozen=True)
class ScanSettings:
    """Static settings of :func:`scan_pixels` (hashable; part of the compilation key)."""

    buffer: int
    ns_max: float
    gamma_min: float
    gamma_max: float
    gamma_fixed: float | None
    node_step: int
    gamma0: float
    dgamma: float
    yield_g0: float
    yield_dg: float
    n_total_min: float
    interp: str
    window: int | None = None


def band_energy_ratios(band: RingBand) -> jax.Array:
    """``(M, K)`` S_E/B_E of the band's events at the ring's declination (SkyLLH's conventions)."""
    er = jnp.zeros((band.log10_e.shape[0], band.signal_energy[0].norm.shape[0]))
    for s, sig in enumerate(band.signal_energy):
        r = energy_ratio_values(sig.pdf_grid(band.log10_e), band.b_energy)
        er = jnp.where((band.season == s)[:, None], r, er)
    return jnp.where(band.valid[:, None], er, 0.0)


def scan_pixels(
    ev_ra: jax.Array,
    n_total: jax.Array,
    band: RingBand,
    pix_ra: jax.Array,
    pix_start: jax.Array,
    settings: ScanSettings,
) -> dict[str, jax.Array]:
    """Fit every pixel of one ring (pure; ``jit`` with ``settings`` static).

    Parameters
    ----------
    ev_ra
        ``(N,)`` right ascension [rad] of every event of the scanner (data or scrambled).
    n_total
        ``(S,)`` events per season.
    band
        The ring's :class:`RingBand`.
    pix_ra
        ``(P,)`` right ascensions of the pixels [rad] (all at ``band.dec_ring``).
    pix_start
        ``(P,)`` first band row of each pixel's window when the band is RA-sorted
        (``settings.window`` rows are examined); ignored without a window.
    settings
        :class:`ScanSettings`.

    Returns
    -------
    dict
        Per pixel: ``ts``, ``ns``, ``gamma``, ``log_bayes`` (:func:`log_marginal`),
        ``converged``, ``n_selected`` and ``overflow`` (buffer too small: invalid).
    """
    st = settings
    er = band_energy_ratios(band)
    ra_b = ev_ra[band.index] + band.ra_shift
    cols = {"ra": ra_b, "dec": band.dec, "sigma": band.sigma, "bsp": band.bkg_spatial, "er": er,
            "season": band.season, "valid": band.valid, "dra": band.dra}  # fmt: skip

    def one(ra_p: jax.Array, start: jax.Array) -> dict[str, jax.Array]:
        if st.window is None:
            c = cols
            d = jnp.abs(c["ra"] - ra_p)
            d = jnp.minimum(d, 2 * jnp.pi - d)
        else:  # RA-sorted band extended across 0 / 2 pi: a contiguous window, no wrap
            c = {k: jax.lax.dynamic_slice_in_dim(v, start, st.window) for k, v in cols.items()}
            d = jnp.abs(c["ra"] - ra_p)
        sel = c["valid"] & (d < c["dra"])
        events, n_sel, count = compact_events(c, sel, st.buffer, n_total.shape[0])
        inputs = PSInputs(
            events=events,
            n_total=n_total,
            n_outside=n_total - n_sel,
            log_yield=band.log_yield,
            src_ra=ra_p,
            src_dec=band.dec_ring,
            gamma0=st.gamma0,
            dgamma=st.dgamma,
            interp=st.interp,
            yield_g0=st.yield_g0,
            yield_dg=st.yield_dg,
            n_total_min=st.n_total_min,
        )
        fit, nodes = fit_ns_gamma_nodes(
            inputs,
            ns_max=st.ns_max,
            gamma_min=st.gamma_min,
            gamma_max=st.gamma_max,
            gamma_fixed=st.gamma_fixed,
            node_step=st.node_step,
        )
        return {
            "ts": fit.ts,
            "ns": fit.ns,
            "gamma": fit.gamma,
            "log_bayes": log_marginal(nodes, st.ns_max, st.gamma_min, st.gamma_max),
            "converged": fit.converged,
            "n_selected": count,
            "overflow": count > st.buffer,
        }

    return jax.vmap(one)(pix_ra, pix_start)


@partial(jax.jit, static_argnames=())
def count_selected(ev_ra: jax.Array, band: RingBand, pix_ra: jax.Array) -> jax.Array:
    """Largest number of band events within reach of any of the pixels."""
    ra_b = ev_ra[band.index] + band.ra_shift

    def one(ra_p):
        d = jnp.abs(ra_b - ra_p)
        d = jnp.minimum(d, 2 * jnp.pi - d)
        return jnp.sum(band.valid & (d < band.dra))

    return jnp.max(jax.lax.map(one, pix_ra, batch_size=64))


def wilks_mlog10p(ts: np.ndarray, dof: int) -> np.ndarray:
    """-log10 of the Wilks p-value with the ns >= 0 boundary, ``0.5 chi2(dof).sf(TS)`` (0 for TS <= 0)."""
    ts = np.asarray(ts, dtype=float)
    with np.errstate(divide="ignore"):
        p = np.where(ts > 0, 0.5 * stats.chi2.sf(np.maximum(ts, 0.0), dof), 1.0)
        lp = np.where(
            ts > 0, -(stats.chi2.logsf(np.maximum(ts, 0.0), dof) + math.log(0.5)) / math.log(10), 0.0
        )
    return np.where(p > 0, np.minimum(lp, -np.log10(np.maximum(p, 1e-300))), lp)


@dataclass
class SkyScan:
    """Result of :meth:`SkyScanner.scan`: per-pixel fits and full-sky maps.

    Attributes
    ----------
    nside
        HEALPix resolution (RING ordering, equatorial).
    pixels
        Scanned pixel indices.
    ts, ns, gamma, log_bayes
        Per scanned pixel: test statistic, best-fit ns and gamma, and the log marginal
        likelihood ratio over flat priors on ns in [0, ns_max] and gamma
        (:func:`~bayesnu.likelihood.ps_fit.log_marginal`).
    converged, n_selected
        Fit convergence and events within reach of each pixel.
    gamma_fixed
        The fixed spectral index, or ``None`` (free).
    compile_s, wall_s, setup_s
        Compilation time, scan time after compilation (host preparation of the bands
        included) and the one-time set-up of the scanner (response tables) [s].
    """

    nside: int
    pixels: np.ndarray
    ts: np.ndarray
    ns: np.ndarray
    gamma: np.ndarray
    log_bayes: np.ndarray
    converged: np.ndarray
    n_selected: np.ndarray
    gamma_fixed: float | None = None
    compile_s: float = 0.0
    wall_s: float = 0.0
    setup_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    MAP_COLUMNS = ("ts", "ns", "gamma", "mlog10p", "log_bayes")

    @property
    def n_pixels(self) -> int:
        """Number of scanned pixels."""
        return len(self.pixels)

    @property
    def dof(self) -> int:
        """Degrees of freedom of the Wilks p-values: 1 with gamma fixed, 2 with gamma free."""
        return 1 if self.gamma_fixed is not None else 2

    @property
    def mlog10p(self) -> np.ndarray:
        """-log10 of the local Wilks p-value per pixel (``0.5 chi2(dof).sf(TS)``; see docs)."""
        return wilks_mlog10p(self.ts, self.dof)

    @property
    def ra_deg(self) -> np.ndarray:
        """Right ascension of the scanned pixels [deg]."""
        _, ph = hp.pix2ang(self.nside, self.pixels)
        return np.degrees(ph)

    @property
    def dec_deg(self) -> np.ndarray:
        """Declination of the scanned pixels [deg]."""
        th, _ = hp.pix2ang(self.nside, self.pixels)
        return 90.0 - np.degrees(th)

    def full_map(self, name: str, fill: float = np.nan) -> np.ndarray:
        """A full-sky RING map of ``name`` (one of :attr:`MAP_COLUMNS`), ``fill`` where not scanned."""
        if name not in self.MAP_COLUMNS:
            raise ConfigError(f"unknown scan map {name!r}; choose one of {', '.join(self.MAP_COLUMNS)}")
        out = np.full(hp.nside2npix(self.nside), fill, dtype=float)
        out[self.pixels] = getattr(self, name)
        return out

    def hottest(self, ts: np.ndarray | None = None) -> dict[str, Any]:
        """The pixel of largest TS (or of ``ts``, e.g. the TS with the prior term)."""
        vals = self.ts if ts is None else np.asarray(ts)
        if len(vals) != self.n_pixels:
            raise ConfigError(f"expected {self.n_pixels} values (one per scanned pixel), got {len(vals)}")
        k = int(np.nanargmax(vals))
        return {
            "pixel": int(self.pixels[k]),
            "ra_deg": float(self.ra_deg[k]),
            "dec_deg": float(self.dec_deg[k]),
            "ts": float(self.ts[k]),
            "ts_ranked": float(vals[k]),
            "ns": float(self.ns[k]),
            "gamma": float(self.gamma[k]),
            "mlog10p": float(self.mlog10p[k]),
        }

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the maps as a HEALPix FITS file (RING, one column per map; NaN where not scanned).

        Columns TS, NS, GAMMA, MLOG10P, LOG_BAYES; header keywords give the scan
        settings and timings. Written atomically.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists; pass overwrite=True (--force) to replace it")
        maps = [self.full_map(c) for c in self.MAP_COLUMNS]
        extra = [
            ("GAMMAFIX", "free" if self.gamma_fixed is None else float(self.gamma_fixed)),
            ("COMPILES", float(self.compile_s)),
            ("WALL_S", float(self.wall_s)),
            ("NPIXSCAN", self.n_pixels),
        ]
        with atomic_path(path) as tmp:
            hp.write_map(
                str(tmp),
                maps,
                nest=False,
                coord="C",
                column_names=[c.upper() for c in self.MAP_COLUMNS],
                dtype=[np.float64] * len(maps),
                extra_header=extra,
                overwrite=True,
            )
        return path

    @classmethod
    def read(cls, path: str | Path) -> SkyScan:
        """Read a file written by :meth:`write`."""
        path = Path(path)
        try:
            maps, header = hp.read_map(str(path), field=None, dtype=np.float64, h=True, nest=False)
        except Exception as exc:  # healpy raises several types for malformed files
            raise DataFormatError(
                f"cannot read the scan maps: {exc}",
                path=path,
                fix="pass a FITS file written by 'bayesnu scan --out'",
            ) from None
        hdr = dict(header)
        maps = np.atleast_2d(maps)
        if maps.shape[0] != len(cls.MAP_COLUMNS):
            raise DataFormatError(
                f"expected {len(cls.MAP_COLUMNS)} map columns, found {maps.shape[0]}",
                path=path,
                fix="pass a FITS file written by 'bayesnu scan --out'",
            )
        cols = dict(zip(cls.MAP_COLUMNS, maps))
        pix = np.flatnonzero(np.isfinite(cols["ts"]) & (cols["ts"] != hp.UNSEEN))
        g = hdr.get("GAMMAFIX", "free")
        return cls(
            nside=hp.npix2nside(maps.shape[1]),
            pixels=pix,
            ts=cols["ts"][pix],
            ns=cols["ns"][pix],
            gamma=cols["gamma"][pix],
            log_bayes=cols["log_bayes"][pix],
            converged=np.ones(len(pix), dtype=bool),
            n_selected=np.zeros(len(pix), dtype=int),
            gamma_fixed=None if g == "free" else float(g),
            compile_s=float(hdr.get("COMPILES", 0.0)),
            wall_s=float(hdr.get("WALL_S", 0.0)),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (the ``bayesnu scan --json`` keys)."""
        h = self.hottest()
        return {
            "nside": self.nside,
            "n_pixels": self.n_pixels,
            "hottest_ra": h["ra_deg"],
            "hottest_dec": h["dec_deg"],
            "ts_max": h["ts"],
            "ns": h["ns"],
            "gamma": h["gamma"],
            "mlog10p": h["mlog10p"],
            "gamma_fixed": self.gamma_fixed,
            "n_not_converged": int(np.sum(~self.converged)),
            "wall_s": self.wall_s,
            "compile_s": self.compile_s,
            "setup_s": self.setup_s,
            "pixels_per_s": self.n_pixels / self.wall_s if self.wall_s > 0 else None,
        }


def _pow2(n: int, minimum: int = 64) -> int:
    return int(max(minimum, 2 ** math.ceil(math.log2(max(n, 1)))))


class SkyScanner:
    """Prepare and run all-sky (or partial) scans over a set of seasons.

    Parameters
    ----------
    models
        One :class:`~bayesnu.analyses.ps_inputs.SeasonModel` per season (e.g.
        ``PointSourceAnalysis.models``).
    ns_max, gamma_bounds
        Fit ranges (the point-source analysis' defaults).
    node_step
        Gamma-node stride of the fit's profile stage.
    tau
        Reach threshold of the event selection (see the module docstring).
    pixel_batch
        Pixels fitted per device and call (small batches: a vmapped fit runs as long as
        its slowest pixel).
    n_devices
        Devices the pixels of a call are sharded over (default: on CPU one per core, as
        many as XLA exposes; on an accelerator 1).
    """

    def __init__(
        self,
        models: Sequence[SeasonModel],
        *,
        ns_max: float = 1000.0,
        gamma_bounds: tuple[float, float] = (1.0, 4.0),
        node_step: int = 2,
        tau: float = TAU,
        pixel_batch: int = 32,
        n_devices: int | None = None,
    ) -> None:
        if not models:
            raise ConfigError("no season given")
        if not gamma_bounds[0] < gamma_bounds[1]:
            raise ConfigError(f"gamma bounds inverted: {gamma_bounds}")
        t0 = time.perf_counter()
        self.models = list(models)
        self.settings = self.models[0].settings
        g = np.asarray(self.settings.gamma_grid)
        if gamma_bounds[0] < g[0] or gamma_bounds[1] > g[-1]:
            raise ConfigError(f"gamma bounds {gamma_bounds} exceed the tabulated range [{g[0]:g}, {g[-1]:g}]")
        self.ns_max = float(ns_max)
        self.gamma_bounds = (float(gamma_bounds[0]), float(gamma_bounds[1]))
        self.node_step = int(node_step)
        self.tau = float(tau)
        self.pixel_batch = int(pixel_batch)
        devs = jax.devices()
        if n_devices is None:
            n_devices = min(len(devs), os.cpu_count() or 1) if devs[0].platform == "cpu" else 1
        if not 1 <= n_devices <= len(devs):
            raise ConfigError(f"n_devices must be in [1, {len(devs)}], got {n_devices}")
        self.devices = devs[:n_devices]
        if n_devices > 1:
            mesh = Mesh(np.array(self.devices), ("pixel",))
            self._replicated = NamedSharding(mesh, PartitionSpec())
            self._sharded = NamedSharding(mesh, PartitionSpec("pixel"))
        else:
            self._replicated = self._sharded = None
        self.n_total = np.asarray([m.n_events for m in self.models], dtype=float)
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("ra", "dec", "sigma", "bsp", "log10_e", "b_energy", "season")
        }
        for s, m in enumerate(self.models):
            ev = m.events
            cols["ra"].append(ev.ra_rad)
            cols["dec"].append(ev.dec_rad)
            cols["sigma"].append(ev.ang_err_rad)
            cols["bsp"].append(np.asarray(m.spatial_bkg.pdf(ev.sin_dec)))
            cols["log10_e"].append(ev.log10_energy)
            cols["b_energy"].append(np.asarray(m.energy_bkg.pdf(ev.log10_energy, ev.sin_dec)))
            cols["season"].append(np.full(len(ev), s, dtype=np.int32))
        self.events = {k: np.concatenate(v) for k, v in cols.items()}
        self._psi: np.ndarray | None = None
        self._psi_decs: tuple[float, float] | None = None
        self.setup_s = time.perf_counter() - t0
        self._compiled: dict[tuple[int, int, ScanSettings], Any] = {}

    # ------------------------------------------------------------------ reach
    def _signal_envelope_ratio(self, decs_rad: np.ndarray) -> np.ndarray:
        """Upper bound of every event's S_E/B_E over the given declinations and all gammas."""
        out = np.zeros(len(self.events["ra"]))
        for s, m in enumerate(self.models):
            here = self.events["season"] == s
            x = self.events["log10_e"][here]
            lo, hi = float(np.min(x)) - 0.01, float(np.max(x)) + 0.01
            grid = np.linspace(lo, hi, 4001)
            env = np.zeros_like(grid)
            for key_dec in {m._dec_key(float(d)): float(d) for d in decs_rad}.values():
                env = np.maximum(env, m.signal_energy(key_dec).pdf_grid(grid).max(axis=1))
            # Conservative between grid points: the largest of the neighbouring nodes, +10%.
            env = 1.1 * np.maximum.reduce([env, np.roll(env, 1), np.roll(env, -1)])
            k = np.clip(np.searchsorted(grid, x), 0, len(grid) - 1)
            s_bound = np.maximum(env[k], env[np.maximum(k - 1, 0)])
            out[here] = energy_ratio_values(s_bound[:, None], self.events["b_energy"][here])[:, 0]
        return out

    def reach(self, decs_rad: np.ndarray) -> np.ndarray:
        """Reach angle [rad] of every event for sources at any of ``decs_rad`` (cached by range)."""
        decs_rad = np.asarray(decs_rad, dtype=float)
        rng = (float(decs_rad.min()), float(decs_rad.max()))
        if (
            self._psi is None
            or self._psi_decs is None
            or not (self._psi_decs[0] <= rng[0] and rng[1] <= self._psi_decs[1])
        ):
            er_bound = self._signal_envelope_ratio(decs_rad)
            self._psi = reach_angle(self.events["sigma"], self.events["bsp"], er_bound, self.tau)
            self._psi_decs = rng
        return self._psi

    def prepare(self, decs_rad: np.ndarray) -> np.ndarray:
        """Build (and cache) the response tables of these declinations and the events' reach.

        Signal energy PDFs and detector yields are cached in the season models, so a
        second scan (e.g. a trial) does no table work. Returns the reach angles.
        """
        psi = self.reach(decs_rad)
        for d in np.asarray(decs_rad, dtype=float):
            for m in self.models:
                m.signal_energy(float(d))
                m.log_yield(float(d))
        return psi

    def layout(
        self, dec_rad: float, psi: np.ndarray, ra: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the band of declination ``dec_rad``: event indices, RA shifts and RA half-widths.

        Without ``ra`` the events within reach in declination, in event order. With
        ``ra`` (the right ascensions of the scan), sorted by RA and extended across
        0 / 2 pi: events with ``ra >= 2 pi - w`` are prepended with a shift of ``-2 pi``
        and events with ``ra < w`` appended with ``+2 pi`` (``w`` the largest half-width),
        so that every pixel's candidates form one contiguous window and no event can be
        within reach twice (half-widths never exceed pi).
        """
        ev = self.events
        keep = np.flatnonzero(np.abs(ev["dec"] - dec_rad) < psi)
        dra = reach_half_width(ev["dec"][keep], psi[keep], dec_rad)
        if ra is None:
            return keep, np.zeros(len(keep)), dra
        order = np.argsort(ra[keep], kind="stable")
        keep, dra = keep[order], dra[order]
        r = ra[keep]
        w = float(dra.max()) if len(dra) else 0.0
        lo = r >= 2 * np.pi - w
        hi = r < w
        idx = np.concatenate([keep[lo], keep, keep[hi]])
        shift = np.concatenate(
            [np.full(lo.sum(), -2 * np.pi), np.zeros(len(keep)), np.full(hi.sum(), 2 * np.pi)]
        )
        return idx, shift, np.concatenate([dra[lo], dra, dra[hi]])

    def band(
        self,
        dec_rad: float,
        psi: np.ndarray,
        pad_to: int | None = None,
        rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[RingBand, int]:
        """The :class:`RingBand` of declination ``dec_rad`` (host arrays) and its row count.

        ``rows`` is a :meth:`layout` (default: the unsorted one).
        """
        ev = self.events
        idx, shift, dra_rows = self.layout(dec_rad, psi) if rows is None else rows
        n = len(idx)
        size = pad_to if pad_to is not None else _pow2(n, 256)
        if size < n:
            raise ConfigError(f"band of {n} events does not fit pad_to={size}")

        def col(values: np.ndarray, fill: float, dtype=float) -> np.ndarray:
            out = np.full(size, fill, dtype=dtype)
            out[:n] = values
            return out

        band = RingBand(
            index=col(idx, 0, np.int32),
            dec=col(ev["dec"][idx], 0.0),
            sigma=col(ev["sigma"][idx], 1.0),
            bkg_spatial=col(ev["bsp"][idx], 1.0),
            log10_e=col(ev["log10_e"][idx], 0.0),
            b_energy=col(ev["b_energy"][idx], 1.0),
            season=col(ev["season"][idx], 0, np.int32),
            valid=np.arange(size) < n,
            dra=col(dra_rows, 0.0),
            # Padding rows sit far beyond 2 pi + pi: never inside a window's reach.
            ra_shift=col(shift, 100.0),
            signal_energy=tuple(m.signal_energy(dec_rad) for m in self.models),
            log_yield=np.stack([m.log_yield(dec_rad) for m in self.models]),
            dec_ring=np.asarray(dec_rad, dtype=float),
        )
        return band, n

    def scan_settings(self, buffer: int, gamma_fixed: float | None) -> ScanSettings:
        """The static settings of a scan with this buffer size."""
        g = np.asarray(self.settings.gamma_grid)
        dg = float(g[1] - g[0])
        return ScanSettings(
            buffer=int(buffer),
            ns_max=self.ns_max,
            gamma_min=self.gamma_bounds[0],
            gamma_max=self.gamma_bounds[1],
            gamma_fixed=None if gamma_fixed is None else float(gamma_fixed),
            node_step=self.node_step,
            gamma0=float(g[0]),
            dgamma=dg,
            yield_g0=float(g[0]),
            yield_dg=dg / YIELD_SUBDIVISION,
            n_total_min=float(self.n_total.min()),
            interp=self.settings.interp,
        )

    def _kernel(self, args: tuple, settings: ScanSettings) -> tuple[Any, float]:
        """The compiled :func:`scan_pixels` for these shapes (compile time returned apart)."""
        band = args[2]
        key = (int(band.index.shape[0]), int(args[3].shape[0]), settings)  # settings hold buffer and window
        if key in self._compiled:
            return self._compiled[key], 0.0
        t0 = time.perf_counter()
        kernel = partial(scan_pixels, settings=settings)
        if self._sharded is None:
            jitted = jax.jit(kernel)
        else:  # pixels split over the devices, everything else replicated
            r, p = self._replicated, self._sharded
            jitted = jax.jit(kernel, in_shardings=(r, r, r, p, p), out_shardings=p)
        fn = jitted.lower(*args).compile()
        self._compiled[key] = fn
        return fn, time.perf_counter() - t0

    # ------------------------------------------------------------------ scan
    def scan(
        self,
        nside: int,
        *,
        pixels: np.ndarray | None = None,
        dec_range_deg: tuple[float, float] | None = (-85.0, 85.0),
        gamma_fixed: float | None = None,
        ra_rad: np.ndarray | None = None,
        progress: bool | None = None,
    ) -> SkyScan:
        """Fit every pixel (RING) of ``nside`` inside ``dec_range_deg`` (or the given ``pixels``).

        Parameters
        ----------
        nside
            HEALPix resolution.
        pixels
            RING pixel indices to scan (default: all within ``dec_range_deg``).
        dec_range_deg
            Declination limits [deg] (``None``: the whole sky).
        gamma_fixed
            Fit ns only, at this spectral index (default: gamma free).
        ra_rad
            Right ascensions [rad] of the scanner's events to use instead of the data's
            (e.g. scrambled for a background trial), in the order of the seasons.
        progress
            Progress bar over rings (default: only in a terminal).
        """
        if not hp.isnsideok(nside, nest=True):
            raise ConfigError(f"nside={nside} is not a valid HEALPix resolution (a power of 2)")
        if gamma_fixed is not None and not self.gamma_bounds[0] <= gamma_fixed <= self.gamma_bounds[1]:
            raise ConfigError(f"gamma_fixed={gamma_fixed} outside {self.gamma_bounds}")
        npix = hp.nside2npix(nside)
        if pixels is None:
            th, _ = hp.pix2ang(nside, np.arange(npix))
            dec = 90.0 - np.degrees(th)
            sel = np.ones(npix, dtype=bool)
            if dec_range_deg is not None:
                lo, hi = dec_range_deg
                if not lo < hi:
                    raise ConfigError(f"declination range inverted: {dec_range_deg}")
                sel = (dec > lo) & (dec < hi)
            pixels = np.flatnonzero(sel)
        else:
            pixels = np.unique(np.asarray(pixels, dtype=np.int64))
            if pixels.size and (pixels.min() < 0 or pixels.max() >= npix):
                raise ConfigError(f"pixel indices must lie in [0, {npix}) for nside {nside}")
        if pixels.size == 0:
            raise ConfigError("no pixel to scan (empty pixel list or declination range)")
        ra_all = self.events["ra"] if ra_rad is None else np.asarray(ra_rad, dtype=float)
        if ra_all.shape != self.events["ra"].shape:
            raise ConfigError(f"ra_rad must hold {len(self.events['ra'])} values, got {ra_all.shape}")
        th, ph = hp.pix2ang(nside, pixels)
        ring_dec = np.round(np.pi / 2 - th, 12)
        rings = np.unique(ring_dec)
        t_prep = time.perf_counter()
        psi = self.prepare(rings)
        setup_s = self.setup_s + time.perf_counter() - t_prep
        t_start = time.perf_counter()
        compile_s = 0.0
        P = self.pixel_batch * len(self.devices)
        # Host layout of every ring: RA-sorted, extended rows; each pixel's window of
        # candidates; the exact largest count within reach (the buffer size).
        plan = []
        for d in rings:
            idx = np.flatnonzero(ring_dec == d)
            rows = self.layout(float(d), psi, ra_all)
            ext_ra = ra_all[rows[0]] + rows[1]
            w = float(rows[2].max()) if len(rows[2]) else 0.0
            n_chunks = math.ceil(len(idx) / P)
            pix_ra = np.full(n_chunks * P, ph[idx[0]])
            pix_ra[: len(idx)] = ph[idx]
            start = np.searchsorted(ext_ra, pix_ra - w, side="left")
            stop = np.searchsorted(ext_ra, pix_ra + w, side="right")
            counts = [
                int(np.sum(np.abs(ext_ra[a:b] - r) < rows[2][a:b])) for a, b, r in zip(start, stop, pix_ra)
            ]  # fmt: skip
            plan.append((d, idx, rows, pix_ra, start, int(np.max(stop - start)), max(counts)))
        window = int(256 * math.ceil(max(p[5] for p in plan) / 256))
        # Buffers: at most three sizes (the 1/3, 2/3 and full quantiles of the rings' exact
        # needs, in steps of 128 events), each ring taking the smallest that holds it:
        # few compilations, little padding.
        needs = np.array([128 * math.ceil(max(p[6], 1) / 128) for p in plan])
        levels = np.unique([int(np.quantile(needs, q, method="higher")) for q in (1 / 3, 2 / 3, 1.0)])
        band_size = int(
            1024 * math.ceil(max(max(len(p[2][0]), int(p[4].max()) + window) for p in plan) / 1024)
        )
        rep = (lambda x: jax.device_put(x, self._replicated)) if self._replicated is not None else jnp.asarray
        shd = (lambda x: jax.device_put(x, self._sharded)) if self._sharded is not None else jnp.asarray
        ev_ra = rep(ra_all)
        n_total = rep(self.n_total)
        out: dict[str, list] = {k: [] for k in ("ts", "ns", "gamma", "log_bayes", "converged", "n_selected",
                                                "overflow")}  # fmt: skip
        order: list[np.ndarray] = []
        pb = progress_bar(len(rings), "sky scan", enabled=progress, unit="ring")
        for d, idx, rows, pix_ra, start, _, max_count in plan:
            band_h, _ = self.band(float(d), psi, pad_to=band_size, rows=rows)
            band = jax.tree_util.tree_map(rep, band_h)
            need = 128 * math.ceil(max(max_count, 1) / 128)
            buffer = int(levels[np.searchsorted(levels, need)])
            settings = replace(self.scan_settings(buffer, gamma_fixed), window=window)
            start = start.astype(np.int32)
            for c in range(len(pix_ra) // P):
                args = (
                    ev_ra,
                    n_total,
                    band,
                    shd(pix_ra[c * P : (c + 1) * P]),
                    shd(start[c * P : (c + 1) * P]),
                )
                fn, dt = self._kernel(args, settings)
                compile_s += dt
                res = fn(*args)
                for k in out:
                    out[k].append(res[k])
            order.append(np.concatenate([idx, np.full(len(pix_ra) - len(idx), -1)]))
            pb.update()
        pb.close()
        flat = {k: np.concatenate([np.asarray(a) for a in v]) for k, v in out.items()}
        pos = np.concatenate(order)
        keep = pos >= 0
        inv = np.empty(len(pixels), dtype=np.int64)
        inv[pos[keep]] = np.flatnonzero(keep)
        res = {k: v[inv] for k, v in flat.items()}
        wall = time.perf_counter() - t_start - compile_s
        if np.any(res["overflow"]):  # cannot happen: buffers are sized from the exact counts
            raise RuntimeError("sky scan: an event buffer overflowed; please report this")
        return SkyScan(
            nside=int(nside),
            pixels=pixels,
            ts=res["ts"],
            ns=res["ns"],
            gamma=res["gamma"],
            log_bayes=res["log_bayes"],
            converged=res["converged"].astype(bool),
            n_selected=res["n_selected"].astype(int),
            gamma_fixed=None if gamma_fixed is None else float(gamma_fixed),
            compile_s=compile_s,
            wall_s=wall,
            setup_s=setup_s,
            meta={
                "n_events": int(self.n_total.sum()),
                "band_size": band_size,
                "window": window,
                "tau": self.tau,
                "seasons": [m.name for m in self.models],
            },
        )
