"""Tests of the multi-layer SSL front-end on tiny local models."""

import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel

from unipool_lobes.frontends.ssl import MultiLayerSSL, resolve_source

FAMILIES = ["wav2vec2", "hubert", "wavlm"]
NORMS = ["group", "layer"]
# Sample lengths of a batch: one longer and one shorter than the middle one.
LENGTHS = [12000, 20000, 7000]
TOLERANCE = 1e-5


def make_batch(lengths=LENGTHS, seed=0):
    """Random utterances, their zero-padded batch and relative lengths."""
    generator = torch.Generator().manual_seed(seed)
    # An offset and a scale so that waveform normalisation changes things.
    utterances = [
        0.3 + 2.0 * torch.randn(length, generator=generator)
        for length in lengths
    ]
    batch = torch.zeros(len(lengths), max(lengths))
    for row, utterance in enumerate(utterances):
        batch[row, : len(utterance)] = utterance
    relative = torch.tensor(lengths, dtype=torch.float) / max(lengths)
    return utterances, batch, relative


def batch_vs_alone_error(ssl, lengths=LENGTHS):
    """Largest difference, over valid frames and layers, batched vs alone."""
    utterances, batch, relative = make_batch(lengths)
    hidden_states, frame_lens = ssl(batch, relative)
    num_frames = hidden_states.shape[2]
    error = 0.0
    for row, utterance in enumerate(utterances):
        alone, alone_lens = ssl(utterance.unsqueeze(0))
        valid = alone.shape[2]
        assert alone_lens.tolist() == [1.0]
        assert round(frame_lens[row].item() * num_frames) == valid
        assert torch.all(hidden_states[row, :, valid:] == 0)
        difference = hidden_states[row, :, :valid] - alone[0]
        error = max(error, difference.abs().max().item())
    return error


@pytest.mark.parametrize("do_normalize", [False, True])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_padding_invariance(local_ssl_model, family, norm, do_normalize):
    """Valid frames of every layer do not depend on the rest of the batch."""
    folder = local_ssl_model(family, norm, do_normalize)
    ssl = MultiLayerSSL(folder)
    assert ssl.do_normalize == do_normalize
    assert batch_vs_alone_error(ssl) < TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_batching_differs_for_group_norm(local_ssl_model, family):
    """Without exact padding the group-norm CNN sees the padding."""
    group = MultiLayerSSL(local_ssl_model(family, "group"), exact_padding=False)
    assert batch_vs_alone_error(group) > 1e-2
    # The layer-norm CNN is local in time: plain batching is exact there.
    layer = MultiLayerSSL(local_ssl_model(family, "layer"), exact_padding=False)
    assert batch_vs_alone_error(layer) < TOLERANCE


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_alone_matches_hf_pipeline(local_ssl_model, family, norm):
    """One utterance gives HF's hidden states after HF's feature extractor."""
    folder = local_ssl_model(family, norm, do_normalize=True)
    utterance = make_batch()[0][0]
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    inputs = extractor(
        utterance.numpy(), sampling_rate=16000, return_tensors="pt"
    )
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(inputs.input_values, output_hidden_states=True)
    expected = torch.stack(outputs.hidden_states, dim=1)

    hidden_states, _ = MultiLayerSSL(folder)(utterance.unsqueeze(0))
    assert hidden_states.shape == expected.shape
    assert torch.allclose(hidden_states, expected, atol=TOLERANCE)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("family", FAMILIES)
def test_plain_path_matches_hf_batched_call(local_ssl_model, family):
    """exact_padding=False is HF's batched call with its attention mask."""
    folder = local_ssl_model(family, "layer", do_normalize=True)
    utterances, batch, relative = make_batch()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    inputs = extractor(
        [utterance.numpy() for utterance in utterances],
        sampling_rate=16000,
        padding=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(
            inputs.input_values,
            attention_mask=inputs.attention_mask,
            output_hidden_states=True,
        )
    expected = torch.stack(outputs.hidden_states, dim=1)

    ssl = MultiLayerSSL(folder, exact_padding=False)
    hidden_states, frame_lens = ssl(batch, relative)
    num_frames = hidden_states.shape[2]
    for row, relative_length in enumerate(frame_lens.tolist()):
        valid = round(relative_length * num_frames)
        assert torch.allclose(
            hidden_states[row, :, :valid],
            expected[row, :, :valid],
            atol=TOLERANCE,
        )


def test_equal_lengths_share_one_cnn_call(local_ssl_model):
    """The exact path groups utterances of equal length into one CNN call."""
    ssl = MultiLayerSSL(local_ssl_model("wav2vec2", "group"))
    calls = []
    ssl.model.feature_extractor.register_forward_hook(
        lambda module, args, output: calls.append(args[0].shape[0])
    )
    _, batch, relative = make_batch([9000, 16000, 9000, 16000])
    ssl(batch, relative)
    assert sorted(calls) == [2, 2]
    calls.clear()
    ssl(batch)
    assert calls == [4]


def test_frame_lengths_follow_the_model(local_ssl_model):
    """frame_lengths gives the frame count the model outputs."""
    ssl = MultiLayerSSL(local_ssl_model("hubert", "layer"))
    for num_samples in [400, 719, 720, 4000, 16000, 16321]:
        hidden_states, _ = ssl(torch.randn(1, num_samples))
        expected = hidden_states.shape[2]
        assert int(ssl.frame_lengths(num_samples)) == expected
    assert ssl.frame_lengths(16000 * 3).item() == 149  # 50 Hz


def test_frozen_model_has_no_grad_and_stays_in_eval(local_ssl_model):
    """freeze=True: no gradients, eval mode kept under .train()."""
    ssl = MultiLayerSSL(local_ssl_model("wavlm", "group"), freeze=True)
    assert not any(param.requires_grad for param in ssl.parameters())
    ssl.train()
    assert ssl.training and not ssl.model.training
    assert not any(module.training for module in ssl.model.modules())
    _, batch, relative = make_batch()
    first, _ = ssl(batch, relative)
    second, _ = ssl(batch, relative)
    assert not first.requires_grad
    assert torch.equal(first, second)


@pytest.mark.parametrize("norm", NORMS)
def test_fine_tuning_gets_gradients(local_ssl_model, norm):
    """freeze=False: train mode follows the lobe and every weight learns."""
    folder = local_ssl_model("wav2vec2", norm)
    ssl = MultiLayerSSL(folder, freeze=False).train()
    assert ssl.model.training
    assert ssl.model.config.layerdrop == 0.0
    _, batch, relative = make_batch()
    hidden_states, _ = ssl(batch, relative)
    hidden_states.square().mean().backward()
    trainable = [
        (name, param)
        for name, param in ssl.named_parameters()
        if param.requires_grad
    ]
    cnn = [name for name, _ in trainable if ".feature_extractor." in name]
    assert cnn, "the CNN should be trainable"
    # Parameters that cannot reach the output are frozen (DDP-friendly).
    no_grad = [name for name, param in trainable if param.grad is None]
    assert no_grad == []
    # The final LayerNorm of stable-layer-norm models feeds no output.
    final_norm = ssl.model.encoder.layer_norm.weight
    assert final_norm.requires_grad == (norm == "group")
    ssl.eval()
    assert not ssl.model.training


def test_freeze_feature_extractor_keeps_cnn_frozen(local_ssl_model):
    """freeze_feature_extractor: CNN without grads, the rest with grads."""
    ssl = MultiLayerSSL(
        local_ssl_model("hubert", "group"),
        freeze=False,
        freeze_feature_extractor=True,
    ).train()
    _, batch, relative = make_batch()
    hidden_states, _ = ssl(batch, relative)
    hidden_states.square().mean().backward()
    for param in ssl.model.feature_extractor.parameters():
        assert not param.requires_grad and param.grad is None
    for param in ssl.model.encoder.layers[-1].parameters():
        assert param.grad is not None


def test_no_layerdrop_and_no_spec_augment_unless_asked(local_ssl_model):
    """Training forwards are deterministic when dropout is zero."""
    folder = local_ssl_model(
        "wav2vec2",
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.5,
        mask_time_prob=0.5,
        mask_time_length=2,
    )
    _, batch, relative = make_batch()
    ssl = MultiLayerSSL(folder, freeze=False).train()
    first, _ = ssl(batch, relative)
    second, _ = ssl(batch, relative)
    assert torch.equal(first, second)

    masked = MultiLayerSSL(folder, freeze=False, apply_spec_augment=True)
    masked.train()
    first, _ = masked(batch, relative)
    second, _ = masked(batch, relative)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("norm", NORMS)
def test_num_layers_keeps_the_first_layers(local_ssl_model, norm):
    """num_layers=K: L = K + 1 and the kept layers are unchanged."""
    folder = local_ssl_model("wavlm", norm, num_hidden_layers=3)
    _, batch, relative = make_batch()
    full, _ = MultiLayerSSL(folder)(batch, relative)
    ssl = MultiLayerSSL(folder, num_layers=2)
    subset, frame_lens = ssl(batch, relative)
    assert full.shape[1] == 4
    assert ssl.num_hidden_states == 3 and subset.shape[1] == 3
    assert len(ssl.model.encoder.layers) == 2
    assert torch.allclose(subset, full[:, :3], atol=TOLERANCE)
    with pytest.raises(ValueError, match="num_layers"):
        MultiLayerSSL(folder, num_layers=4)


def test_properties(local_ssl_model):
    """num_hidden_states, hidden_size and sample_rate of a tiny model."""
    ssl = MultiLayerSSL(local_ssl_model("wav2vec2"))
    assert ssl.num_hidden_states == 3
    assert ssl.hidden_size == 32
    assert ssl.sample_rate == 16000


@pytest.mark.parametrize(
    "path",
    ["/no/such/model", "./missing", "../missing", "~/missing/x", "a/b/c"],
)
def test_missing_local_path_raises(path):
    """A local-looking path that does not exist never reaches the hub."""
    with pytest.raises(FileNotFoundError, match=path.replace(".", r"\.")):
        MultiLayerSSL(path)


def test_missing_model_in_an_existing_folder_raises(tmp_path, monkeypatch):
    """``models/w2v`` is local when ``models/`` exists here: no hub lookup."""
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="models/w2v"):
        resolve_source("models/w2v")


def test_hub_ids_are_left_to_the_hub():
    """An org/name id is passed on unchanged (no lookup here)."""
    assert resolve_source("facebook/wav2vec2-base") == "facebook/wav2vec2-base"


def test_do_normalize_from_checkpoint(local_ssl_model, tmp_path):
    """do_normalize comes from the feature-extractor config, else False."""
    assert MultiLayerSSL(local_ssl_model(do_normalize=True)).do_normalize
    assert not MultiLayerSSL(local_ssl_model()).do_normalize
    bare = tmp_path / "bare"
    shutil.copytree(local_ssl_model(do_normalize=True), bare)
    os.remove(bare / "preprocessor_config.json")
    assert not MultiLayerSSL(str(bare)).do_normalize
    assert MultiLayerSSL(str(bare), do_normalize=True).do_normalize


def test_bad_inputs_raise(local_ssl_model):
    """Bad shapes, lengths and too short utterances give clear errors."""
    ssl = MultiLayerSSL(local_ssl_model())
    with pytest.raises(ValueError, match="batch, samples"):
        ssl(torch.randn(16000))
    with pytest.raises(ValueError, match="relative lengths"):
        ssl(torch.randn(2, 16000), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        ssl(torch.randn(2, 16000), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"utterances \[1\]"):
        ssl(torch.randn(2, 16000), torch.tensor([1.0, 0.01]))


def test_config_overrides_reach_the_model(local_ssl_model):
    """config_overrides set model config keys; unknown keys are errors."""
    ssl = MultiLayerSSL(
        local_ssl_model("wav2vec2"),
        freeze=False,
        apply_spec_augment=True,
        config_overrides={"mask_time_prob": 0.3, "mask_time_length": 4},
    )
    assert ssl.model.config.mask_time_prob == 0.3
    assert ssl.model.config.mask_time_length == 4
    with pytest.raises(KeyError, match="mask_time_porb"):
        MultiLayerSSL(
            local_ssl_model("wav2vec2"), config_overrides={"mask_time_porb": 1}
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_final_layer_norm_of_stable_models(local_ssl_model, family):
    """``final_layer_norm`` gives the last hidden state transformers 4.x
    gave (the model's normalised ``last_hidden_state``); the other layers
    and other models are unchanged (before: no such option, the raw output
    of the last layer only)."""
    utterance = make_batch()[0][0].unsqueeze(0)
    folder = local_ssl_model(family, "layer")
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(utterance, output_hidden_states=True)
    raw, _ = MultiLayerSSL(folder)(utterance)
    normed, _ = MultiLayerSSL(folder, final_layer_norm=True)(utterance)
    assert torch.allclose(raw[0, -1], outputs.hidden_states[-1][0], atol=1e-5)
    assert torch.allclose(
        normed[0, -1], outputs.last_hidden_state[0], atol=TOLERANCE
    )
    assert not torch.allclose(normed[0, -1], raw[0, -1], atol=1e-2)
    assert torch.equal(normed[:, :-1], raw[:, :-1])

    # Fine-tuned, the final LayerNorm now learns (DDP needs its gradient).
    ssl = MultiLayerSSL(folder, freeze=False, final_layer_norm=True).train()
    _, batch, relative = make_batch()
    ssl(batch, relative)[0].square().mean().backward()
    assert ssl.model.encoder.layer_norm.weight.grad is not None

    group = local_ssl_model(family, "group")
    plain, _ = MultiLayerSSL(group)(utterance)
    same, _ = MultiLayerSSL(group, final_layer_norm=True)(utterance)
    assert torch.equal(plain, same)


def test_cls_frame_is_prepended_and_padding_invariant(local_ssl_model):
    """``cls_frame``: a frame of ones before the projected features; every
    transformer layer sees it, an utterance's frames are the same alone or
    batched (before: no such frame, FinetuneWV2 mean-pooled instead)."""
    folder = local_ssl_model("wav2vec2", "group")
    ssl = MultiLayerSSL(folder, cls_frame=True)
    plain = MultiLayerSSL(folder)
    utterance = make_batch()[0][0].unsqueeze(0)
    with_cls, lengths = ssl(utterance)
    without, _ = plain(utterance)
    assert with_cls.shape[2] == without.shape[2] + 1
    assert lengths.tolist() == [1.0]
    # Manual: project, prepend ones, run HF's encoder.
    model = ssl.model
    with torch.no_grad():
        features = model.feature_extractor(utterance).transpose(1, 2)
        hidden = model.feature_projection(features)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        hidden = torch.cat([torch.ones_like(hidden[:, :1]), hidden], dim=1)
        expected = model.encoder(hidden).last_hidden_state
    torch.testing.assert_close(with_cls[:, -1], expected, atol=1e-5, rtol=0)
    assert batch_vs_alone_error(ssl) < TOLERANCE


def test_layerdrop_skips_layers_in_training_only(local_ssl_model):
    """A dropped layer passes its input on (its entry repeats the previous
    one); evaluation and frozen models never drop (before: the layerdrop
    of the config was forced to 0 and no option existed)."""
    folder = local_ssl_model("wav2vec2", "group")
    ssl = MultiLayerSSL(folder, freeze=False, layerdrop=0.5).train()
    _, batch, relative = make_batch()
    seen_drop = False
    for seed in range(12):
        torch.manual_seed(seed)
        kept = ssl._layers_to_run(2)
        torch.manual_seed(seed)
        hidden_states, _ = ssl(batch, relative)
        assert kept, "at least one layer runs"
        for index in range(2):
            repeated = torch.equal(
                hidden_states[:, index + 1], hidden_states[:, index]
            )
            assert repeated == (index not in kept)
        seen_drop = seen_drop or len(kept) < 2
    assert seen_drop
    hidden_states.square().mean().backward()
    ssl.eval()
    with torch.no_grad():
        first, _ = ssl(batch, relative)
        second, _ = ssl(batch, relative)
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="layerdrop must be in"):
        MultiLayerSSL(folder, freeze=False, layerdrop=1.0)


def test_time_masks_without_a_minimum_number_of_spans(local_ssl_model):
    """``mask_time_min_masks: 0`` (FinetuneWV2's authors): on 149 frames
    with p 0.05 and span 10, 0 or 1 span per utterance; HF's default
    minimum of 2 always masks at least 2 spans' worth of frames."""
    folder = local_ssl_model("wav2vec2", "group")

    def masked_counts(min_masks):
        overrides = {"mask_time_prob": 0.05, "mask_time_length": 10}
        if min_masks is not None:
            overrides["mask_time_min_masks"] = min_masks
        ssl = MultiLayerSSL(
            folder,
            freeze=False,
            apply_spec_augment=True,
            config_overrides=overrides,
        ).train()
        counts = []
        for seed in range(40):
            # HF draws the span count once per batch, from numpy's RNG.
            np.random.seed(seed)
            hidden = torch.zeros(1, 149, ssl.hidden_size)
            masked = ssl.model._mask_hidden_states(hidden)
            counts.append(int((masked != 0).any(dim=2).sum()))
        return torch.tensor(counts)

    counts = masked_counts(0)
    assert set(counts.tolist()) <= {0, 10}
    assert 0 in counts.tolist() and 10 in counts.tolist()
    assert masked_counts(None).min() >= 10
