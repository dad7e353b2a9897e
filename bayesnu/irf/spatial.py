r"""Signal spatial PDF of a point source and great-circle distances (JAX).

The signal PDF is the 2D Gaussian point-spread function of width :math:`\sigma_i`
(the event's AngErr) written on the sphere in the opening angle :math:`\psi`
(the Rayleigh form SkyLLH's public-data analysis uses, no floor on :math:`\psi`):

.. math::

    S_i = \frac{1}{2\pi\sin\psi_i}\,\frac{\psi_i}{\sigma_i^2}
          \exp\!\left(-\frac{\psi_i^2}{2\sigma_i^2}\right)\quad[\mathrm{sr}^{-1}],

with :math:`\psi = 2\arcsin\sqrt{h}` and the haversine
:math:`h = \sin^2\frac{\Delta\delta}{2} + \cos\delta_1\cos\delta_2\sin^2\frac{\Delta\alpha}{2}`.
The PDF is evaluated from :math:`h` through :math:`\psi^2` with series expansions
near :math:`h = 0`, so values and gradients with respect to the source position stay
finite for an event exactly at the source.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_SMALL = 1e-10


def haversine(ra1: jax.Array, dec1: jax.Array, ra2: jax.Array, dec2: jax.Array) -> jax.Array:
    """Haversine of the opening angle between two directions [rad], clipped to [0, 1]."""
    sdd = jnp.sin(0.5 * (dec1 - dec2))
    sdr = jnp.sin(0.5 * (ra1 - ra2))
    return jnp.clip(sdd * sdd + jnp.cos(dec1) * jnp.cos(dec2) * sdr * sdr, 0.0, 1.0)


def angular_distance(ra1: jax.Array, dec1: jax.Array, ra2: jax.Array, dec2: jax.Array) -> jax.Array:
    """Great-circle distance [rad] between (ra1, dec1) and (ra2, dec2) given in radians."""
    return 2.0 * jnp.arcsin(jnp.sqrt(haversine(ra1, dec1, ra2, dec2)))


def _psi2_from_haversine(h: jax.Array) -> jax.Array:
    small = h < _SMALL
    safe = jnp.where(small, 0.25, h)
    psi = 2.0 * jnp.arcsin(jnp.sqrt(safe))
    return jnp.where(small, 4.0 * h * (1.0 + h / 3.0), psi * psi)


def rayleigh_pdf_haversine(h: jax.Array, sigma: jax.Array) -> jax.Array:
    """Signal PDF per steradian from the haversine ``h`` of the opening angle; ``sigma`` [rad]."""
    psi2 = _psi2_from_haversine(h)
    small = psi2 < 4.0 * _SMALL
    safe = jnp.where(small, 1.0, psi2)
    root = jnp.sqrt(safe)
    psi_over_sin = jnp.where(small, 1.0 + psi2 / 6.0, root / jnp.sin(root))
    s2 = sigma * sigma
    return psi_over_sin / (2.0 * jnp.pi * s2) * jnp.exp(-0.5 * psi2 / s2)


def rayleigh_pdf(psi: jax.Array, sigma: jax.Array) -> jax.Array:
    """Signal PDF per steradian at opening angle ``psi`` [rad] for width ``sigma`` [rad]."""
    return rayleigh_pdf_haversine(jnp.sin(0.5 * psi) ** 2, sigma)
