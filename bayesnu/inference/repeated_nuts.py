"""One NUTS sampler compiled once and run on many data sets (SBC, coverage studies).

``numpyro.infer.MCMC`` re-traces and re-compiles its sampling loop on every ``run`` call
when the kernel is re-initialised for new model arguments, even with
``jit_model_args=True``: over hundreds of simulated data sets that costs seconds per
data set and grows the process's JIT code memory until LLVM cannot allocate more.
:class:`RepeatedNUTS` builds the whole chain (initialisation, warm-up with step-size and
mass-matrix adaptation, sampling) as one ``jax.jit`` function of ``(rng_key,
model_kwargs)`` from NumPyro's functional HMC interface, so every data set with the same
array shapes reuses one executable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesnu.errors import ConfigError


class NUTSDraws(NamedTuple):
    """Draws of one chain.

    Attributes
    ----------
    samples
        Constrained draws of every latent site, shape ``(draws // thin, ...)``.
    diverging
        Divergence flag of every kept draw.
    num_steps
        Leapfrog steps of every kept draw.
    """

    samples: dict[str, np.ndarray]
    diverging: np.ndarray
    num_steps: np.ndarray


class RepeatedNUTS:
    """A single-chain NUTS sampler compiled once for a model and many data sets.

    Parameters
    ----------
    model
        NumPyro model called as ``model(**model_kwargs)``; the data sets differ only in
        the values (not shapes) of the keyword arguments' arrays.
    init_values
        Initial values (constrained) of every latent site.
    warmup, draws, thin
        Warm-up iterations, sampling iterations and thinning (``draws // thin`` kept).
    dense_mass
        Dense mass matrix adaptation.
    target_accept_prob, max_tree_depth
        NUTS settings, as in :class:`numpyro.infer.NUTS`.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        init_values: Mapping[str, float],
        *,
        warmup: int,
        draws: int,
        thin: int = 1,
        dense_mass: bool = False,
        target_accept_prob: float = 0.8,
        max_tree_depth: int = 10,
    ) -> None:
        if warmup < 1 or draws < 1 or thin < 1 or draws // thin < 1:
            raise ConfigError(
                f"need warmup >= 1, draws >= 1 and 1 <= thin <= draws (got {warmup}, {draws}, {thin})"
            )
        self.model = model
        self.init_values = {k: float(v) for k, v in init_values.items()}
        self.warmup, self.draws, self.thin = int(warmup), int(draws), int(thin)
        self.dense_mass = bool(dense_mass)
        self.target_accept_prob = float(target_accept_prob)
        self.max_tree_depth = int(max_tree_depth)
        self._z0: dict[str, jax.Array] | None = None
        self._run = jax.jit(self._chain)

    def _unconstrained_init(self, model_kwargs: Mapping[str, Any]) -> dict[str, jax.Array]:
        from numpyro.infer.util import unconstrain_fn

        z = unconstrain_fn(self.model, (), dict(model_kwargs), self.init_values)
        return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in z.items()}

    def _chain(self, rng_key: jax.Array, z0: dict[str, jax.Array], model_kwargs: dict[str, Any]):
        from numpyro.infer.hmc import hmc
        from numpyro.infer.util import constrain_fn, potential_energy

        def potential(z: dict[str, jax.Array]) -> jax.Array:
            return potential_energy(self.model, (), model_kwargs, z)

        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        state = init_kernel(
            z0,
            num_warmup=self.warmup,
            dense_mass=self.dense_mass,
            target_accept_prob=self.target_accept_prob,
            max_tree_depth=self.max_tree_depth,
            rng_key=rng_key,
        )

        def step(s, _):
            s = sample_kernel(s)
            return s, (s.z, s.diverging, s.num_steps)

        state, _ = jax.lax.scan(step, state, None, length=self.warmup)
        state, (zs, div, nsteps) = jax.lax.scan(step, state, None, length=self.draws)
        sl = slice(self.thin - 1, None, self.thin)
        zs, div, nsteps = jax.tree.map(lambda a: a[sl], (zs, div, nsteps))
        samples = jax.vmap(lambda z: constrain_fn(self.model, (), model_kwargs, z))(zs)
        return samples, div, nsteps

    def run(self, rng_key: jax.Array, **model_kwargs: Any) -> NUTSDraws:
        """Sample one chain for the data set given as the model's keyword arguments."""
        if self._z0 is None:
            self._z0 = self._unconstrained_init(model_kwargs)
        samples, div, nsteps = self._run(rng_key, self._z0, dict(model_kwargs))
        return NUTSDraws(
            samples={k: np.asarray(v) for k, v in samples.items()},
            diverging=np.asarray(div, dtype=bool),
            num_steps=np.asarray(nsteps),
        )

    @property
    def n_compiled(self) -> int:
        """How many executables the sampler has compiled (1 when shapes never changed)."""
        return int(self._run._cache_size())
