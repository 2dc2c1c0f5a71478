"""Seeding a run as the UniPool authors do.

SpeechBrain's ``seed_everything`` seeds Python, numpy and torch; its
``deterministic`` flag turns on ``torch.use_deterministic_algorithms``,
which fails on operations without a deterministic kernel. The authors
instead seed the same generators and set cuDNN to its deterministic,
non-benchmarking mode, which only picks convolution algorithms.

Authors
 * unipool-sv developers 2026
"""

import torch
from speechbrain.utils.seed import seed_everything


def seed_run(seed, cudnn_deterministic=False):
    """Seeds every generator and, optionally, makes cuDNN deterministic.

    Arguments
    ---------
    seed : int
        The seed of Python, numpy and torch (every device).
    cudnn_deterministic : bool
        Set ``torch.backends.cudnn.deterministic = True`` and
        ``benchmark = False`` (the authors' setting: same convolution
        algorithms at every run, possibly slower). False leaves cuDNN as
        it is.

    Returns
    -------
    int
        The seed.

    Example
    -------
    >>> seed_run(42, cudnn_deterministic=True)
    42
    >>> torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    (True, False)
    >>> torch.backends.cudnn.deterministic = False
    """
    seed = seed_everything(seed, verbose=False)
    if cudnn_deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed
