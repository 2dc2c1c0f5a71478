"""The cosine classifier under the AAM-softmax, with a choice of start.

SpeechBrain's ``ECAPA_TDNN.Classifier`` keeps one weight vector per class,
``[n_classes, E]``, initialised Xavier-uniform with the bound
``sqrt(6 / (E + n_classes))``. The UniPool authors keep the same weights as
a ``[1, E, n_classes]`` tensor (one loss head) and initialise *that*
Xavier-uniform: torch then counts ``E * n_classes`` inputs and
``n_classes`` outputs, so the bound is ``sqrt(6 / ((E + 1) * n_classes))``,
much smaller for many classes (0.0208 against 0.1508 for 192 x 72). The
margin loss sees cosines either way; the start differs.

Authors
 * unipool-sv developers 2026
"""

import math

import torch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

CLASSIFIER_INITS = ("authors", "xavier_normal", "speechbrain")


def authors_init_bound(input_size, out_neurons):
    """The uniform bound of the UniPool authors' head initialisation.

    Arguments
    ---------
    input_size : int
        Embedding size ``E``.
    out_neurons : int
        Number of classes.

    Returns
    -------
    float
        ``sqrt(6 / ((E + 1) * out_neurons))``.

    Example
    -------
    >>> round(authors_init_bound(192, 72), 4)
    0.0208
    """
    return math.sqrt(6.0 / ((input_size + 1) * out_neurons))


class CosineClassifier(Classifier):
    """SpeechBrain's cosine classifier, initialised as the authors do.

    Same module, state dict and forward as
    ``speechbrain.lobes.models.ECAPA_TDNN.Classifier`` (so checkpoints and
    exports are interchangeable); only the initial weights differ.

    Arguments
    ---------
    input_size : int
        Embedding size.
    out_neurons : int
        Number of classes.
    init : str
        ``authors`` (uniform in ``±sqrt(6 / ((E + 1) n))``, the UniPool
        authors' start), ``xavier_normal`` (normal with std
        ``sqrt(2 / (E + n))``, the start of the authors' ECAPA-TDNN head,
        TaoRuijie's) or ``speechbrain`` (SpeechBrain's Xavier-uniform).
    **kwargs
        Further arguments of ``Classifier`` (``lin_blocks``, ...).

    Example
    -------
    >>> head = CosineClassifier(192, 72)
    >>> bool(head.weight.abs().max() <= authors_init_bound(192, 72))
    True
    >>> head(torch.randn(4, 1, 192)).shape
    torch.Size([4, 1, 72])
    """

    def __init__(self, input_size, out_neurons, init="authors", **kwargs):
        if init not in CLASSIFIER_INITS:
            raise ValueError(
                f"init: {init!r} is not one of {', '.join(CLASSIFIER_INITS)}"
            )
        super().__init__(input_size, out_neurons=out_neurons, **kwargs)
        if init == "authors":
            bound = authors_init_bound(self.weight.shape[1], out_neurons)
            with torch.no_grad():
                self.weight.uniform_(-bound, bound)
        elif init == "xavier_normal":
            torch.nn.init.xavier_normal_(self.weight, gain=1.0)
