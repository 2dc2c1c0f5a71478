"""Collective-consistent decisions for multi-process (DDP) runs.

Every process of a DDP run must issue the same collectives in the same
order, or the run hangs until the collective timeout. Whatever depends on
the file system (which checkpoints exist, whether a folder is in use,
whether a preparation is done) may look different to different processes
for a moment, so such a decision is taken once, on the main process, and
shared: :func:`decide_on_main` runs a function on rank 0 and gives its
result, or its exception, to every process, so that all of them go on or
all of them raise the same error.

Authors
 * unipool-sv developers 2026
"""

import datetime
import os
import pickle

import torch
from speechbrain.utils.distributed import (
    ddp_broadcast,
    get_local_rank,
    get_rank,
    if_main_process,
    is_distributed_initialized,
)

# SpeechBrain's own default (``ddp_init_group``): long enough for the main
# process to write large checkpoints and score big trial lists while the
# others wait.
DEFAULT_TIMEOUT_SECONDS = 7200


def init_distributed(run_opts, timeout_seconds=DEFAULT_TIMEOUT_SECONDS):
    """Starts the process group under torchrun, with a collective timeout.

    SpeechBrain's ``ddp_init_group`` with the timeout as an argument: a
    mismatch of collectives then fails after ``timeout_seconds`` with an
    error naming the collective (set ``TORCH_DISTRIBUTED_DEBUG=DETAIL`` to
    have torch compare every collective across the processes) instead of
    hanging for two hours. Outside torchrun (no ``RANK``/``LOCAL_RANK``) it
    does nothing.

    Arguments
    ---------
    run_opts : mapping
        SpeechBrain's run options (``distributed_backend``).
    timeout_seconds : float
        Collective timeout.

    Raises
    ------
    ValueError
        On an unknown or unavailable backend, or too few GPUs for NCCL.

    Example
    -------
    >>> init_distributed({"distributed_backend": "gloo"})  # not under torchrun
    """
    rank, local_rank = get_rank(), get_local_rank()
    if rank is None or local_rank is None:
        return
    backend = run_opts["distributed_backend"]
    available = {
        "nccl": torch.distributed.is_nccl_available,
        "gloo": torch.distributed.is_gloo_available,
        "mpi": torch.distributed.is_mpi_available,
    }
    if backend not in available:
        raise ValueError(
            f"distributed_backend {backend!r}: use nccl, gloo or mpi"
        )
    if not available[backend]():
        raise ValueError(f"the {backend} backend is not available here")
    if timeout_seconds <= 0:
        raise ValueError(f"the DDP timeout must be > 0, got {timeout_seconds}")
    if backend == "nccl":
        if local_rank + 1 > torch.cuda.device_count():
            raise ValueError(
                f"local rank {local_rank} has no GPU: only "
                f"{torch.cuda.device_count()} visible"
            )
        torch.cuda.set_device(torch.device(f"cuda:{local_rank}"))
    torch.distributed.init_process_group(
        backend=backend,
        rank=int(rank),
        timeout=datetime.timedelta(seconds=timeout_seconds),
    )


def world_size():
    """The number of processes of the run (1 without DDP).

    Returns
    -------
    int
        The world size.

    Example
    -------
    >>> world_size()
    1
    """
    if not is_distributed_initialized():
        return 1
    return torch.distributed.get_world_size()


def decide_on_main(function, *args, **kwargs):
    """Runs ``function`` on the main process; every process gets the outcome.

    The result is broadcast to every process; an exception raised on the
    main process is raised on every process (the main process re-raises its
    own, the others a copy), so no process goes on while another stops.
    Without DDP this is a plain call.

    Arguments
    ---------
    function : callable
        The decision, e.g. listing checkpoints; runs on rank 0 only.
    *args : tuple
        Its positional arguments.
    **kwargs : dict
        Its keyword arguments.

    Returns
    -------
    object
        What ``function`` returned on the main process (it must pickle).

    Example
    -------
    >>> decide_on_main(sorted, [3, 1, 2])
    [1, 2, 3]
    """
    if not is_distributed_initialized():
        return function(*args, **kwargs)
    outcome = None
    if if_main_process():
        try:
            outcome = (True, function(*args, **kwargs))
        except Exception as error:
            outcome = (False, error)
    shared = ddp_broadcast(_picklable(outcome))
    succeeded, value = shared
    if succeeded:
        return value
    if if_main_process():
        raise outcome[1]
    raise value


def _picklable(outcome):
    """The outcome itself, or its error as a RuntimeError if it won't pickle."""
    if outcome is None:
        return outcome
    try:
        pickle.dumps(outcome)
    except Exception:
        succeeded, value = outcome
        if succeeded:
            raise
        message = f"{type(value).__name__} on the main process: {value}"
        return False, RuntimeError(message)
    return outcome


def pid_and_rank():
    """``pid N`` or ``rank R, pid N`` for messages.

    Returns
    -------
    str
        Who this process is.

    Example
    -------
    >>> pid_and_rank().startswith("pid ")
    True
    """
    if is_distributed_initialized():
        return f"rank {torch.distributed.get_rank()}, pid {os.getpid()}"
    return f"pid {os.getpid()}"
