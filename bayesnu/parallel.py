"""Progress bars and the ``dask.distributed`` plumbing shared by all batch engines.

Every long loop in bayesnu (pseudo-experiments, sensitivity scans, sky scans) shows a
:func:`progress_bar` that is silent when stderr is not a terminal, and fans out over
``dask.distributed`` through :func:`dask_client` and :func:`map_ordered`:

* :func:`dask_client` yields a :class:`distributed.Client`: a new
  :class:`distributed.LocalCluster` (``processes=True``, one single-threaded worker per
  core; workers are *spawned*, never forked, because forking after JAX initialised
  deadlocks) when no scheduler is given, a connection to any scheduler address, or a
  client the caller already holds (left open).
* :func:`map_ordered` submits one task per item, shows the progress bar as tasks finish
  and returns the results in submission order, so the result never depends on which
  worker finished first.

Work is mapped in *batches* (each task ``vmap``-s a whole batch); jitted kernels must be
importable module-level functions or be cached per worker process (see
:mod:`bayesnu.frequentist.trials`), otherwise every task pays a fresh compilation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from bayesnu.errors import ConfigError

__all__ = ["dask_client", "default_n_workers", "map_ordered", "progress_bar"]


def progress_bar(total: int | None, desc: str, *, enabled: bool | None = None, unit: str = "it") -> tqdm:
    """A tqdm progress bar that stays quiet when stderr is not a terminal.

    Parameters
    ----------
    total
        Expected number of steps (``None`` when unknown).
    desc
        Label shown left of the bar.
    enabled
        ``True``/``False`` force the bar on/off; ``None`` (default) shows it only when
        stderr is a TTY (tqdm's ``disable=None``) and ``BAYESNU_NO_PROGRESS`` is unset.
    unit
        Unit name of one step.
    """
    if enabled is None:
        disable: bool | None = True if os.environ.get("BAYESNU_NO_PROGRESS") else None
    else:
        disable = not enabled
    return tqdm(total=total, desc=desc, disable=disable, unit=unit, leave=False, dynamic_ncols=True)


def default_n_workers() -> int:
    """Number of single-threaded workers for a LocalCluster: one per CPU core."""
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(
    scheduler: Any = None, *, n_workers: int | None = None, memory_limit: str | None = "auto"
) -> Iterator[Any]:
    """Yield a ``dask.distributed`` client.

    Parameters
    ----------
    scheduler
        ``None``: start a :class:`distributed.LocalCluster` with ``n_workers``
        single-threaded worker *processes* (spawned) and close it afterwards.
        A string: the address of a running scheduler (``"tcp://host:8786"``), or
        ``"local"`` for the default LocalCluster. A :class:`distributed.Client`:
        used as is and left open.
    n_workers
        Workers of the LocalCluster (default: one per CPU core). Ignored for an address.
    memory_limit
        Per-worker memory limit of the LocalCluster (dask syntax, e.g. ``"4GB"``).
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is None or (isinstance(scheduler, str) and scheduler.lower() in {"local", "localcluster"}):
        if n_workers is not None and n_workers < 1:
            raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
        cluster = LocalCluster(
            n_workers=n_workers or default_n_workers(),
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    if isinstance(scheduler, str):
        try:
            client = Client(scheduler)
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the dask scheduler at {scheduler!r}: {exc}. Fix: start one with "
                "`dask scheduler` (and `dask worker ADDRESS`), or omit the address for a LocalCluster"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    raise ConfigError(
        f"scheduler must be None, 'local', an address string or a distributed.Client, got {type(scheduler)}"
    )


def map_ordered(
    client: Any,
    func: Callable[..., Any],
    items: Sequence[Any],
    *,
    shared: Sequence[Any] = (),
    desc: str = "tasks",
    progress: bool | None = None,
    weights: Sequence[int] | None = None,
    unit: str = "it",
) -> list[Any]:
    """Run ``func(item, *shared)`` for every item on a dask client; results in item order.

    Parameters
    ----------
    client
        A :class:`distributed.Client` (see :func:`dask_client`).
    func
        Task function. Define it at module level in an importable module.
    items
        One task per item (small: indices, seeds, parameters).
    shared
        Large read-only arguments common to all tasks: scattered once to every worker
        (``broadcast=True``) instead of being shipped with each task.
    desc, progress, unit
        Progress-bar label, on/off (see :func:`progress_bar`) and unit.
    weights
        Progress increment of each item (e.g. trials per batch); default 1.
    """
    from distributed import as_completed

    # scatter([obj]) keeps a tuple/list/dict argument in one piece (scatter(obj) would split it)
    shared_futures = [client.scatter([obj], broadcast=True, hash=False)[0] for obj in shared]
    futures = [client.submit(func, item, *shared_futures, pure=False) for item in items]
    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    total = int(sum(weights)) if weights is not None else len(futures)
    with progress_bar(total, desc, enabled=progress, unit=unit) as bar:
        try:
            for fut in as_completed(futures):
                i = position[fut.key]
                results[i] = fut.result()
                bar.update(1 if weights is None else int(weights[i]))
        finally:
            for fut in futures:
                fut.release()
            for fut in shared_futures:
                fut.release()
    return results
