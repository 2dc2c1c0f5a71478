"""Fixed-length crops of utterances, as the UniPool authors train on them.

The authors' training items all have the crop's length: a longer utterance
gives a random crop, a shorter one is *wrap-padded* (its samples repeated
until the crop is full, numpy's ``pad(..., mode="wrap")``), so no training
batch holds padding. ``pad`` keeps a short utterance whole instead; the
batch then zero-pads it and its true length masks the padding.

Authors
 * unipool-sv developers 2026
"""

import torch

CROP_PADDINGS = ("wrap", "pad")


def check_crop_padding(crop_padding):
    """Refuses an unknown ``crop_padding`` value, naming the choices.

    Arguments
    ---------
    crop_padding : str
        ``wrap`` or ``pad``.

    Returns
    -------
    str
        The value, checked.

    Example
    -------
    >>> check_crop_padding("wrap")
    'wrap'
    """
    if crop_padding not in CROP_PADDINGS:
        raise ValueError(
            f"crop_padding: {crop_padding!r} is not one of "
            f"{', '.join(CROP_PADDINGS)}"
        )
    return crop_padding


def random_crop_start(n_samples, crop_samples, generator=None):
    """Draws the first sample of a crop, uniformly over the valid starts.

    Arguments
    ---------
    n_samples : int
        Length of the utterance.
    crop_samples : int
        Length of the crop.
    generator : torch.Generator, optional
        Source of randomness (the global one by default).

    Returns
    -------
    int
        ``0`` when the utterance is not longer than the crop.

    Example
    -------
    >>> random_crop_start(100, 100)
    0
    >>> 0 <= random_crop_start(100, 40) <= 60
    True
    """
    if n_samples <= crop_samples:
        return 0
    high = n_samples - crop_samples + 1
    return int(torch.randint(0, high, (), generator=generator))


def wrap_pad(signal, n_samples):
    """Repeats a signal until it has ``n_samples`` samples.

    Arguments
    ---------
    signal : torch.Tensor
        ``[time]`` samples (at least one).
    n_samples : int
        Length wanted; a longer signal is returned unchanged.

    Returns
    -------
    torch.Tensor
        ``[max(time, n_samples)]``: the signal, then its start again, and so
        on (numpy's ``pad(..., mode="wrap")`` on the right).

    Example
    -------
    >>> wrap_pad(torch.tensor([1.0, 2.0, 3.0]), 7)
    tensor([1., 2., 3., 1., 2., 3., 1.])
    """
    length = signal.shape[-1]
    if length >= n_samples:
        return signal
    if length == 0:
        raise ValueError("cannot wrap-pad an empty signal")
    repeats = -(-n_samples // length)
    return signal.repeat(repeats)[:n_samples]
