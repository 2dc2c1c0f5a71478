"""The cosine classifier's start: the UniPool authors' or SpeechBrain's."""

import math

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from unipool_lobes.models.classifier import CosineClassifier


def test_authors_init_has_the_authors_bound():
    """Uniform in ±sqrt(6 / ((E + 1) n)): the bound torch's Xavier gives a
    ``[1, E, n]`` tensor (before: SpeechBrain's sqrt(6 / (E + n)), 7 times
    wider for 192 x 72)."""
    torch.manual_seed(0)
    head = CosineClassifier(192, 72)
    reference = torch.empty(1, 192, 72)
    torch.nn.init.xavier_uniform_(reference)
    bound = math.sqrt(6 / (193 * 72))
    assert head.weight.abs().max() <= bound
    assert head.weight.abs().max() > 0.99 * bound
    assert reference.abs().max() <= bound
    assert float(head.weight.detach().std()) == pytest.approx(
        float(reference.std()), rel=0.05
    )


def test_speechbrain_init_and_state_dict_are_speechbrains():
    torch.manual_seed(0)
    ours = CosineClassifier(192, 72, init="speechbrain")
    torch.manual_seed(0)
    theirs = Classifier(192, out_neurons=72)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert torch.equal(ours.weight, theirs.weight)
    x = torch.randn(5, 1, 192)
    assert torch.equal(ours(x), theirs(x))
    with pytest.raises(ValueError, match="init: 'xavier'"):
        CosineClassifier(192, 72, init="xavier")
