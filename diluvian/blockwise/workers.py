"""The Dask side of a blockwise fill: the client, and each worker's cached model.

A :func:`dask_client` serves a whole ``diluvian fill --block-shape`` run
(and ``diluvian agglomerate`` on Dask); :func:`run_tasks` waits for its
tasks; :func:`worker_model` loads a model file once per worker (and dtype policy)
and keeps it for every block task that worker runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..util import DiluvianError

__all__ = ["dask_client", "run_tasks", "worker_model"]

logger = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"thread-{threading.get_ident()}"


def _set_tf_threads(threads: int) -> None:
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised in this process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker_model(model, network_config, dtype_policy: str, tf_threads: int | None = None):
    """The model of a block task: loaded once per worker and model file, then cached.

    It runs under the Keras ``dtype_policy`` (``[fill] dtype_policy``).

    ``model`` that is not a path (a predictor callable or a model object) is
    returned as is.
    """
    if not isinstance(model, (str, os.PathLike)):
        return model
    policy = str(dtype_policy)
    key = (_worker_name(), str(model), policy)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if tf_threads:
                _set_tf_threads(tf_threads)
            from ..network import load_model, resolve_dtype_policy

            _MODELS[key] = load_model(model, network_config=network_config,
                                      dtype_policy=resolve_dtype_policy(policy))
        return _MODELS[key]


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None,
                processes: bool = True, progress: bool = True) -> Iterator[Any]:
    """A Dask ``Client``: of the scheduler at ``scheduler``, or of a new ``LocalCluster``.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running scheduler (e.g. started by
        dask-jobqueue on SLURM or dask-kubernetes); default: a ``LocalCluster``
        on this machine, closed on exit.
    workers : int, optional
        LocalCluster worker processes (one thread each); default: CPU cores.
    processes : bool
        LocalCluster workers as processes (false: threads of this process).
    progress : bool
        Print the dashboard address.
    """
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise DiluvianError(f"cannot connect to the Dask scheduler {scheduler!r}: "
                                f"{exc}") from None
    else:
        n = int(workers) if workers else (os.cpu_count() or 1)
        if n < 1:
            raise DiluvianError(f"--workers {n}: expected at least 1")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    link = client.dashboard_link
    logger.info("Dask dashboard: %s", link)
    if progress:
        print(f"Dask dashboard: {link}", file=sys.stderr)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_tf_threads(client) -> int | None:
    """TensorFlow threads per worker: the machine's cores shared among local workers."""
    cluster = getattr(client, "cluster", None)
    if cluster is None:
        return None
    n = max(1, len(client.scheduler_info().get("workers", {})))
    return max(1, (os.cpu_count() or 1) // n)


def run_tasks(client, futures, desc: str, progress: bool, on_done=None,
              unit: str = "block") -> list:
    """Wait for ``futures`` in completion order; cancel the rest on the first failure.

    Returns the results in the order of ``futures``; ``on_done(i, result)``
    is called as each one lands.
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    results = [None] * len(futures)
    where = {f.key: i for i, f in enumerate(futures)}
    with tqdm(total=len(futures), desc=desc, unit=unit, disable=not progress,
              dynamic_ncols=True) as bar:
        try:
            for fut in as_completed(futures):
                i = where[fut.key]
                results[i] = fut.result()
                if on_done is not None:
                    on_done(i, results[i])
                bar.update(1)
        except BaseException:
            client.cancel(futures)
            raise
    return results
