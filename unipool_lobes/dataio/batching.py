"""Evaluation batches bounded by their padded duration.

A transformer front-end's attention takes memory in proportion to
``batch × frames²``: a batch of a fixed number of utterances is harmless
for 3 s crops and fatal for recordings of several minutes (three 9-minute
files in one batch took 14.6 GB). Here an evaluation batch holds utterances
of similar length (sorted by duration) up to a budget of padded seconds
(``batch size × longest``), and an utterance longer than the budget goes
alone. Under DDP each process takes every ``world_size``-th utterance of
the sorted list, so the shards hold similar lengths.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch.utils.data import Sampler


def duration_batches(
    durations, max_batch_size, max_seconds, rank=0, world_size=1
):
    """Groups indices into batches of bounded padded duration.

    Arguments
    ---------
    durations : sequence of float
        Duration of each item, in seconds.
    max_batch_size : int
        Most items in a batch.
    max_seconds : float
        Most padded seconds (items × the longest) in a batch; a longer
        item makes a batch of its own.
    rank : int
        This process's shard (items ``rank, rank + world_size, ...`` of the
        items sorted by duration).
    world_size : int
        Number of shards.

    Returns
    -------
    list of list of int
        Indices into ``durations``, shortest first.

    Raises
    ------
    ValueError
        On a non-positive batch size or budget.

    Example
    -------
    >>> duration_batches([1.0, 30.0, 2.0, 2.0, 500.0], 8, 60)
    [[0, 2, 3], [1], [4]]
    >>> duration_batches([1.0, 30.0, 2.0, 2.0, 500.0], 8, 60, 1, 2)
    [[2, 1]]
    """
    if max_batch_size < 1:
        raise ValueError(f"the batch size must be >= 1, got {max_batch_size}")
    if not max_seconds > 0:
        raise ValueError(f"the batch budget must be > 0 s, got {max_seconds}")
    order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    batches, batch = [], []
    for index in order[rank::world_size]:
        # Sorted: the item joining is the longest, so it sets the padding.
        padded = (len(batch) + 1) * durations[index]
        if batch and (len(batch) >= max_batch_size or padded > max_seconds):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)
    return batches


class DurationBatchSampler(Sampler):
    """A batch sampler of :func:`duration_batches`, for a ``DataLoader``.

    Arguments
    ---------
    durations : sequence of float
        Duration of each item of the dataset, in seconds.
    max_batch_size : int
        Most items in a batch.
    max_seconds : float
        Most padded seconds in a batch.
    rank : int
        This process's shard.
    world_size : int
        Number of shards.

    Example
    -------
    >>> sampler = DurationBatchSampler([3.0, 1.0, 2.0], 2, 100)
    >>> list(sampler), len(sampler)
    ([[1, 2], [0]], 2)
    """

    def __init__(
        self, durations, max_batch_size, max_seconds, rank=0, world_size=1
    ):
        super().__init__()
        self.batches = duration_batches(
            durations, max_batch_size, max_seconds, rank, world_size
        )

    def __iter__(self):
        return iter([list(batch) for batch in self.batches])

    def __len__(self):
        return len(self.batches)


def is_out_of_memory(error):
    """Whether an exception is a failed memory allocation (GPU or CPU).

    Arguments
    ---------
    error : BaseException
        The exception.

    Returns
    -------
    bool
        True for ``torch.OutOfMemoryError``, ``MemoryError`` and torch's
        CPU allocator failure.

    Example
    -------
    >>> is_out_of_memory(MemoryError()), is_out_of_memory(ValueError())
    (True, False)
    """
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text
    )
