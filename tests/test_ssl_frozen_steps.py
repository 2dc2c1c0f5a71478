"""The ``frozen_steps`` option of the multi-layer SSL front-end.

The model runs frozen for the first ``frozen_steps`` training forward
passes, then is fine-tuned; the count is checkpointed with the lobe.
"""

import pytest
import torch

from unipool_lobes.frontends.ssl import MultiLayerSSL

# No dropout anywhere, so that train and eval mode differ only by masking.
NO_DROPOUT = {
    "hidden_dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0,
}


def _wav(seed=0, batch=2, samples=8000):
    return torch.randn(
        batch, samples, generator=torch.Generator().manual_seed(seed)
    )


def _transformer_parameters(ssl):
    return list(ssl.model.encoder.parameters())


def test_frozen_then_fine_tuned(local_ssl_model):
    """N frozen passes give no graph; the next ones train the transformer."""
    ssl = MultiLayerSSL(
        local_ssl_model(),
        freeze=False,
        freeze_feature_extractor=True,
        frozen_steps=2,
    ).train()
    assert all(p.requires_grad for p in _transformer_parameters(ssl))
    for _ in range(2):
        hidden_states, _ = ssl(_wav())
        assert not hidden_states.requires_grad
    assert int(ssl.training_forwards) == 2
    assert not ssl.in_frozen_phase

    hidden_states, _ = ssl(_wav())
    assert hidden_states.requires_grad
    hidden_states.square().mean().backward()
    assert all(
        p.grad is not None for p in ssl.model.encoder.layers[0].parameters()
    )
    assert all(p.grad is None for p in ssl.model.feature_extractor.parameters())
    assert ssl.training and ssl.model.training


def test_frozen_pass_is_the_eval_mode_output(local_ssl_model):
    """During the frozen phase dropout is off: the eval-mode features."""
    ssl = MultiLayerSSL(local_ssl_model(), freeze=False, frozen_steps=1)
    wav = _wav(seed=3)
    reference, _ = ssl.eval()(wav)
    frozen, _ = ssl.train()(wav)
    assert torch.equal(frozen, reference)
    assert ssl.model.training, "train mode is restored after the frozen pass"


def test_evaluation_passes_are_not_counted(local_ssl_model):
    """Only forward passes in training mode advance the count."""
    ssl = MultiLayerSSL(local_ssl_model(), freeze=False, frozen_steps=1)
    ssl.eval()
    for _ in range(3):
        ssl(_wav())
    assert int(ssl.training_forwards) == 0
    assert ssl.in_frozen_phase


def test_count_is_checkpointed(local_ssl_model):
    """A lobe restored from a state dict resumes the count and the phase."""
    folder = local_ssl_model()
    ssl = MultiLayerSSL(folder, freeze=False, frozen_steps=3).train()
    for _ in range(3):
        ssl(_wav())
    state = ssl.state_dict()
    assert int(state["training_forwards"]) == 3

    resumed = MultiLayerSSL(folder, freeze=False, frozen_steps=3).train()
    assert resumed.in_frozen_phase
    resumed.load_state_dict(state)
    assert not resumed.in_frozen_phase
    hidden_states, _ = resumed(_wav())
    assert hidden_states.requires_grad


def test_optimizer_built_first_updates_only_after_the_switch(local_ssl_model):
    """Adam holds the parameters from the start; they move after N steps."""
    ssl = MultiLayerSSL(local_ssl_model(), freeze=False, frozen_steps=2).train()
    head = torch.nn.Linear(ssl.hidden_size, 1)
    optimizer = torch.optim.Adam(
        [*ssl.parameters(), *head.parameters()], lr=0.01
    )
    layer_weight = ssl.model.encoder.layers[0].attention.q_proj.weight
    start = layer_weight.detach().clone()

    def step():
        optimizer.zero_grad()
        hidden_states, _ = ssl(_wav())
        head(hidden_states).square().mean().backward()
        optimizer.step()

    step()
    step()
    assert torch.equal(layer_weight, start), "frozen for two steps"
    step()
    assert not torch.equal(layer_weight, start), "fine-tuned afterwards"


def test_no_masking_in_the_frozen_phase(local_ssl_model):
    """SpecAugment masking waits for the fine-tuning phase too."""
    folder = local_ssl_model(
        mask_time_prob=0.5, mask_time_length=2, seed=5, **NO_DROPOUT
    )
    ssl = MultiLayerSSL(
        folder, freeze=False, apply_spec_augment=True, frozen_steps=1
    )
    wav = _wav(seed=1, samples=16000)
    reference, _ = ssl.eval()(wav)
    ssl.train()
    frozen, _ = ssl(wav)
    masked, _ = ssl(wav)
    assert torch.equal(frozen, reference)
    assert not torch.allclose(masked, reference)


def test_state_dict_unchanged_without_frozen_steps(local_ssl_model):
    """Without the option the lobe has no extra key (old checkpoints load)."""
    ssl = MultiLayerSSL(local_ssl_model(), freeze=False)
    assert "training_forwards" not in ssl.state_dict()
    assert not ssl.in_frozen_phase


@pytest.mark.parametrize(
    "options",
    [
        {"freeze": True, "frozen_steps": 5},
        {"freeze": False, "frozen_steps": -1},
    ],
)
def test_bad_frozen_steps(local_ssl_model, options):
    """frozen_steps needs a trainable model and a count >= 0."""
    with pytest.raises(ValueError, match="frozen_steps"):
        MultiLayerSSL(local_ssl_model(), **options)
