r"""A sky-map prior on a local tangent-plane patch, smooth enough for NUTS.

HEALPix maps are piecewise constant; NUTS needs a log density with gradients. Around a
centre :math:`(\alpha_0, \delta_0)` a position is written as the tangent-plane offset
:math:`(x, y)` [rad] (east, north) of the azimuthal equidistant projection (the
great-circle distance is :math:`r = \sqrt{x^2+y^2}`, as in the point-source model's
position prior). The prior density per steradian is sampled on a regular
:math:`n\times n` grid of :math:`(x, y)` with healpy's bilinear interpolation on the
sphere (``get_interp_val``), stored as its logarithm (floored at ``floor`` times the
maximum) and interpolated bilinearly in JAX. The density per unit :math:`dx\,dy`
includes the projection's area element, :math:`d\Omega = (\sin r / r)\,dx\,dy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import healpy as hp
import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.errors import ConfigError
from bayesnu.sky.maps import SkyMap


def offset_position(
    ra0: jax.Array, dec0: jax.Array, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Move (ra0, dec0) [rad] by the tangent-plane offset (x east, y north) [rad] along a great circle.

    Works with numpy and JAX arrays; returns (ra, dec) [rad], ra in [0, 2 pi).
    """
    xp = jnp if any(isinstance(a, jax.Array) for a in (ra0, dec0, x, y)) else np
    r = xp.sqrt(x * x + y * y + 1e-300)
    s = xp.sinc(r / np.pi)  # sin(r)/r: smooth at the centre (no bearing angle, finite gradients)
    cos_r = xp.cos(r)
    sin_dec = xp.sin(dec0) * cos_r + xp.cos(dec0) * y * s
    dec = xp.arcsin(xp.clip(sin_dec, -1.0, 1.0))
    ra = ra0 + xp.arctan2(x * s * xp.cos(dec0), cos_r - xp.sin(dec0) * sin_dec)
    return xp.mod(ra, 2 * np.pi), dec


@dataclass(frozen=True)
class TangentPlanePrior:
    """Log prior density on a tangent-plane patch (a JAX pytree; see the module docstring).

    Attributes
    ----------
    log_density
        ``(n, n)`` ln of the prior density per steradian on the grid (rows: y, columns: x).
    ra0_rad, dec0_rad
        Centre of the patch [rad].
    radius_rad
        Half-width of the patch [rad]; offsets are confined to ``[-radius, radius]``.
    """

    log_density: jax.Array
    ra0_rad: jax.Array
    dec0_rad: jax.Array
    radius_rad: float

    @classmethod
    def from_skymap(
        cls, prior: SkyMap, ra_deg: float, dec_deg: float, radius_deg: float, *, n: int = 129,
        floor: float = 1e-12,
    ) -> TangentPlanePrior:  # fmt: skip
        """Sample ``prior`` (any kind; made a density) on an ``n`` x ``n`` grid around (ra_deg, dec_deg)."""
        if not 0 < radius_deg <= 90:
            raise ConfigError(f"patch radius must be in (0, 90] deg, got {radius_deg}")
        if not -90 <= dec_deg <= 90:
            raise ConfigError(f"patch centre declination {dec_deg} deg is outside [-90, 90]")
        dens = prior.to_density().values if prior.kind != "value" else np.asarray(prior.values)
        rad = math.radians(radius_deg)
        g = np.linspace(-rad, rad, n)
        xx, yy = np.meshgrid(g, g)
        ra, dec = offset_position(math.radians(ra_deg), math.radians(dec_deg), xx, yy)
        vals = hp.get_interp_val(dens, np.pi / 2 - dec, ra)
        vmax = float(np.max(vals))
        if not vmax > 0:
            raise ConfigError(
                f"the prior is zero everywhere within {radius_deg} deg of ({ra_deg}, {dec_deg})"
            )
        log_d = np.log(np.maximum(vals, floor * vmax))
        return cls(
            jnp.asarray(log_d), jnp.asarray(math.radians(ra_deg)), jnp.asarray(math.radians(dec_deg)), rad
        )

    def log_prior(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """ln prior density per unit dx dy at the offset (x, y) [rad] (bilinear; area element included)."""
        n = self.log_density.shape[0]
        step = 2 * self.radius_rad / (n - 1)
        u = jnp.clip((x + self.radius_rad) / step, 0.0, n - 1 - 1e-9)
        v = jnp.clip((y + self.radius_rad) / step, 0.0, n - 1 - 1e-9)
        i, j = jnp.floor(v).astype(jnp.int32), jnp.floor(u).astype(jnp.int32)
        tv, tu = v - i, u - j
        d = self.log_density
        val = (
            (1 - tv) * (1 - tu) * d[i, j]
            + (1 - tv) * tu * d[i, j + 1]
            + tv * (1 - tu) * d[i + 1, j]
            + tv * tu * d[i + 1, j + 1]
        )
        r = jnp.sqrt(x * x + y * y + 1e-300)
        return val + jnp.log(jnp.sinc(r / jnp.pi))

    def position(self, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(ra, dec) [rad] of the offset (x, y) [rad]."""
        return offset_position(self.ra0_rad, self.dec0_rad, x, y)


jax.tree_util.register_dataclass(
    TangentPlanePrior, data_fields=["log_density", "ra0_rad", "dec0_rad"], meta_fields=["radius_rad"]
)
