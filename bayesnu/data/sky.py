r"""Sky coordinates at the South Pole: equatorial (RA, Dec) <-> IceCube local (azimuth, zenith).

For a detector at the geographic South Pole the zenith angle of a direction is
:math:`\theta = 90^\circ + \delta` and the azimuth follows the sidereal rotation,

.. math::

    \phi = (\mathrm{GMST}(t) - \alpha + 90^\circ) \bmod 360^\circ,

with the IceCube azimuth convention. The constant 90 deg was read off the public
IC40 events (all 36,900 agree to within 0.3 deg; the residual spread comes from
precession and nutation, which this conversion ignores). GMST is the IAU 1982
expression in UT1 (the release's MJD are UT1).
"""

from __future__ import annotations

import numpy as np

#: MJD of the J2000.0 epoch.
MJD_J2000 = 51544.5


def gmst_deg(mjd: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time [deg] at ``mjd`` (UT1)."""
    d = np.asarray(mjd, dtype=float) - MJD_J2000
    t = d / 36525.0
    return np.mod(280.46061837 + 360.98564736629 * d + 0.000387933 * t**2, 360.0)


def equatorial_to_local(
    ra_deg: np.ndarray, dec_deg: np.ndarray, mjd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IceCube (azimuth, zenith) [deg] of equatorial directions at times ``mjd``.

    Returns
    -------
    azimuth_deg, zenith_deg
        Azimuth in [0, 360), zenith in [0, 180].
    """
    az = np.mod(gmst_deg(mjd) - np.asarray(ra_deg, dtype=float) + 90.0, 360.0)
    zen = np.clip(90.0 + np.asarray(dec_deg, dtype=float), 0.0, 180.0)
    return az, zen


def local_to_equatorial(
    azimuth_deg: np.ndarray, zenith_deg: np.ndarray, mjd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Equatorial (RA, Dec) [deg] of IceCube local directions at times ``mjd`` (inverse of the above)."""
    ra = np.mod(gmst_deg(mjd) - np.asarray(azimuth_deg, dtype=float) + 90.0, 360.0)
    dec = np.asarray(zenith_deg, dtype=float) - 90.0
    return ra, dec


__all__ = ["equatorial_to_local", "gmst_deg", "local_to_equatorial"]
