"""NUTS sampling of NumPyro models into ArviZ (>= 1.0) DataTree objects.

:func:`run_nuts` runs several chains (in parallel on CPU devices when there are
enough; importing :mod:`bayesnu` exposes at least four host devices), converts the
result with :func:`arviz.from_numpyro` and adds the groups an analysis provides:
``observed_data`` (a summary of the data the posterior conditions on) and
``constant_data``. It refuses to hand back NaN: non-finite draws raise, divergences
are counted and warned about.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import arviz as az
import jax
import numpy as np
import numpyro  # noqa: F401  (before numpyro.infer: arviz lazy-loads numpyro, see from_numpyro)
import xarray as xr
from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

from bayesnu.errors import BayesnuError

log = logging.getLogger(__name__)


def _progress_default() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


#: NumPyro extra fields stored in ``sample_stats`` (ArviZ names: ``diverging``, ``n_steps``,
#: ``tree_depth``, ``acceptance_rate``, ``energy`` for the BFMI, ``lp``, ``step_size``).
SAMPLE_STATS: tuple[str, ...] = (
    "diverging",
    "num_steps",
    "accept_prob",
    "energy",
    "potential_energy",
    "adapt_state.step_size",
)


def choose_chain_method(chains: int) -> str:
    """``"parallel"`` when there is one JAX device per chain, else ``"sequential"``."""
    return "parallel" if chains > 1 and jax.local_device_count() >= chains else "sequential"


def run_nuts(
    model: Callable[..., Any],
    *,
    model_args: tuple[Any, ...] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    chain_method: str | None = None,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    init_values: Mapping[str, float] | None = None,
    progress_bar: bool | None = None,
    observed_data: Mapping[str, Any] | None = None,
    constant_data: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    jit_model_args: bool = False,
) -> xr.DataTree:
    """Sample a NumPyro model with NUTS and return an ArviZ DataTree.

    Parameters
    ----------
    model
        NumPyro model function.
    model_args, model_kwargs
        Arguments of the model.
    chains, draws, warmup
        Number of chains, posterior draws per chain, warm-up (adaptation) steps.
    seed
        Seed of the PRNG key (the same seed gives the same draws).
    chain_method
        ``"parallel"``, ``"sequential"`` or ``"vectorized"``; default: parallel when
        there are enough devices.
    target_accept
        Target acceptance probability of the step-size adaptation.
    max_tree_depth
        Maximum NUTS tree depth.
    dense_mass
        Adapt a dense mass matrix.
    init_values
        Start all chains at these (constrained) values; default: prior medians.
    progress_bar
        Show NumPyro's progress bar (default: only when stderr is a terminal).
    observed_data, constant_data
        Arrays stored as the ``observed_data`` / ``constant_data`` groups.
    attrs
        Extra attributes stored on the posterior group (e.g. the analysis settings).
    jit_model_args
        Pass ``model_args`` / ``model_kwargs`` to the compiled sampler as arguments
        instead of closing over them (they must then be arrays or pytrees of arrays).
        Large data closed over become constants of the executable, which made parallel
        chains several times slower for the diffuse MC.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` (``diverging``, ``n_steps``, ``tree_depth``,
        ``acceptance_rate``, ``energy``, ``lp``, ``step_size``), and the optional
        ``observed_data`` / ``constant_data``.

    Raises
    ------
    BayesnuError
        If any posterior draw is not finite.
    """
    if chains < 1 or draws < 1 or warmup < 0:
        raise BayesnuError("chains and draws must be >= 1 and warmup >= 0")
    method = chain_method or choose_chain_method(chains)
    init = init_to_value(values=dict(init_values)) if init_values else init_to_median(num_samples=15)
    kernel = NUTS(
        model,
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        init_strategy=init,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=method,
        progress_bar=_progress_default() if progress_bar is None else progress_bar,
        jit_model_args=jit_model_args,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There are not enough devices")
        mcmc.run(jax.random.PRNGKey(seed), *model_args, extra_fields=SAMPLE_STATS, **dict(model_kwargs or {}))
    dt = az.from_numpyro(mcmc)
    post = dt["posterior"].to_dataset()
    for name, var in post.data_vars.items():
        arr = np.asarray(var.values)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise BayesnuError(
                f"NUTS returned {n_bad} non-finite draws of {name!r}; a quantity is not finite "
                "somewhere in the prior support (check priors, bounds and data)"
            )
    n_div = int(np.asarray(dt["sample_stats"]["diverging"].values).sum())
    if n_div:
        warnings.warn(
            f"{n_div} divergent transitions in {chains} x {draws} draws; consider a higher target_accept "
            "or a reparametrisation",
            stacklevel=2,
        )
    if observed_data:
        dt["observed_data"] = xr.DataTree(xr.Dataset({k: _as_da(v) for k, v in observed_data.items()}))
    if constant_data:
        dt["constant_data"] = xr.DataTree(xr.Dataset({k: _as_da(v) for k, v in constant_data.items()}))
    meta = {"sampler": "NUTS", "chain_method": method, "seed": seed, "warmup": warmup,
            "target_accept": target_accept}  # fmt: skip
    meta.update(attrs or {})
    dt["posterior"].attrs.update({k: _attr(v) for k, v in meta.items()})
    return dt


def _as_da(v: Any) -> xr.DataArray:
    if isinstance(v, xr.DataArray):
        return v
    arr = np.asarray(v)
    dims = [f"dim_{i}" for i in range(arr.ndim)]
    return xr.DataArray(arr, dims=dims)


def _attr(v: Any) -> Any:
    if isinstance(v, (str, int, float, np.integer, np.floating)):
        return v
    if isinstance(v, bool):
        return int(v)
    return str(v)


def add_posterior_variables(
    dt: xr.DataTree, derived: Mapping[str, np.ndarray], dims: Mapping[str, list] | None = None
) -> None:
    """Add derived quantities (arrays shaped ``(chain, draw, ...)``) to the posterior group."""
    post = dt["posterior"].to_dataset()
    for name, arr in derived.items():
        arr = np.asarray(arr)
        extra = list((dims or {}).get(name, [f"{name}_dim_{i}" for i in range(arr.ndim - 2)]))
        post[name] = xr.DataArray(arr, dims=["chain", "draw", *extra])
    dt["posterior"] = xr.DataTree(post)
