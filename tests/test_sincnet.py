"""The SincNet lobe: its layers, its windowing and its padding invariance."""

import pytest
import torch
import torch.nn.functional as F

from unipool_lobes.frontends.waveform import WaveformFrontEnd
from unipool_lobes.models.sincnet import (
    SincNet,
    SincNetClassifier,
    window_starts,
)

# A small SincNet: 50 ms windows (800 samples) and a 10 ms evaluation shift.
SMALL = {
    "window_ms": 50,
    "eval_shift_ms": 10,
    "sinc_channels": 8,
    "sinc_kernel_size": 31,
    "conv_channels": [4, 4],
    "lin_neurons": [16, 16, 12],
}


def _small(**options):
    torch.manual_seed(0)
    return SincNet(**{**SMALL, **options})


def _utterances(*lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(length, generator=generator) for length in lengths]


def _pad(utterances):
    batch = torch.zeros(len(utterances), max(len(u) for u in utterances))
    for row, utterance in enumerate(utterances):
        batch[row, : len(utterance)] = utterance
    lengths = torch.tensor([len(u) / batch.shape[1] for u in utterances])
    return batch, lengths


def test_paper_configuration_layers():
    """375 ms windows, 80 sinc filters, 2 x 60 convolutions, 3 x 2048."""
    sincnet = SincNet()
    assert sincnet.window == 6000 and sincnet.eval_shift == 160
    shapes = [tuple(norm.normalized_shape) for norm in sincnet.conv_norms]
    assert shapes == [(80, 1916), (60, 637), (60, 211)]
    assert sincnet.flat_norm.normalized_shape == (60 * 211,)
    assert sincnet.embedding_size == 2048
    # Layer norms, sinc bands, convolutions, 3 x (linear + batch norm).
    expected = (
        2 * 6000
        + 2 * 80
        + 2 * 80 * 1916
        + (80 * 60 * 5 + 60)
        + 2 * 60 * 637
        + (60 * 60 * 5 + 60)
        + 2 * 60 * 211
        + 2 * 12660
        + (12660 * 2048 + 2048 + 2 * 2048)
        + 2 * (2048 * 2048 + 2048 + 2 * 2048)
    )
    assert sum(p.numel() for p in sincnet.parameters()) == expected


def test_evaluation_ignores_padding():
    """Each utterance's embedding is the same alone and in a padded batch."""
    sincnet = _small().eval()
    utterances = _utterances(3000, 500, 1900)  # one shorter than a window
    batch, lengths = _pad(utterances)
    with torch.no_grad():
        batched = sincnet(batch + 0.0, lengths)
        batch[1, 500:] = 1e3  # the padding holds garbage
        garbage = sincnet(batch, lengths)
        for row, utterance in enumerate(utterances):
            alone = sincnet(utterance.unsqueeze(0))
            assert torch.allclose(alone[0], batched[row], atol=1e-6)
    assert torch.allclose(batched, garbage, atol=1e-6)


def test_evaluation_averages_normalised_windows():
    """The embedding is the mean of the L2-normalised window embeddings."""
    sincnet = _small().eval()
    (utterance,) = _utterances(2345)
    starts = window_starts(2345, 800, shift=160)
    windows = torch.stack([utterance[s : s + 800] for s in starts.tolist()])
    with torch.no_grad():
        expected = F.normalize(sincnet.embed_windows(windows)).mean(dim=0)
        embedding = sincnet(utterance.unsqueeze(0))
    assert embedding.shape == (1, 1, 12)
    assert torch.allclose(embedding[0, 0], expected, atol=1e-6)


def test_evenly_spaced_windows_and_raw_average():
    """eval_num_windows picks N evenly spaced windows; raw averaging too."""
    sincnet = _small(eval_num_windows=3, normalize_windows=False).eval()
    (utterance,) = _utterances(2000)
    windows = torch.stack([utterance[s : s + 800] for s in (0, 600, 1200)])
    with torch.no_grad():
        expected = sincnet.embed_windows(windows).mean(dim=0)
        embedding = sincnet(utterance.unsqueeze(0))
    assert torch.allclose(embedding[0, 0], expected, atol=1e-6)


def test_short_utterance_is_repeated_to_a_window():
    """An utterance shorter than a window is tiled to fill it."""
    sincnet = _small().eval()
    (utterance,) = _utterances(300)
    tiled = utterance.repeat(3)[:800].unsqueeze(0)
    with torch.no_grad():
        expected = F.normalize(sincnet.embed_windows(tiled))
        embedding = sincnet(utterance.unsqueeze(0))
    assert torch.allclose(embedding[0], expected, atol=1e-6)


def test_chunking_does_not_change_embeddings():
    """Embedding windows in chunks of one gives the same average."""
    utterances = _utterances(2500, 1200, seed=4)
    batch, lengths = _pad(utterances)
    with torch.no_grad():
        whole = _small().eval()(batch, lengths)
        chunked = _small(windows_per_chunk=1).eval()(batch, lengths)
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_training_embeds_one_random_window():
    """In training each utterance gives one window at a random position."""
    sincnet = _small().train()
    batch, lengths = _pad(_utterances(4000, 4000, 3000, seed=2))
    torch.manual_seed(1)
    first = sincnet(batch, lengths)
    torch.manual_seed(2)
    second = sincnet(batch, lengths)
    assert first.shape == (3, 1, 12)
    assert not torch.allclose(first, second), "windows move between calls"
    first.sum().backward()
    assert sincnet.sinc.low_hz_.grad is not None
    assert sincnet.linears[0].weight.grad.abs().sum() > 0


def test_training_windows_stay_inside_each_utterance():
    """A random window never reads past its utterance's end."""
    sincnet = _small().train()
    batch, lengths = _pad(_utterances(900, 3000, seed=3))
    windows_seen = []
    original = sincnet.embed_windows

    def record(windows):
        windows_seen.append(windows)
        return original(windows)

    sincnet.embed_windows = record
    batch[0, 900:] = float("nan")
    for _ in range(20):
        sincnet(batch, lengths)
    assert all(torch.isfinite(windows).all() for windows in windows_seen)


def test_classifier_gives_log_probabilities():
    """The head's outputs are log-probabilities over the speakers."""
    head = SincNetClassifier(input_size=12, out_neurons=7)
    log_probs = head(torch.randn(4, 1, 12))
    assert log_probs.shape == (4, 1, 7)
    assert torch.allclose(log_probs.exp().sum(dim=-1), torch.ones(4, 1))


def test_waveform_front_end_zeroes_padding():
    """The front-end returns the waveforms with the padding zeroed."""
    wav = torch.ones(2, 10)
    samples, lengths = WaveformFrontEnd()(wav, torch.tensor([1.0, 0.3]))
    assert samples[1].tolist() == [1.0] * 3 + [0.0] * 7
    assert lengths.tolist() == pytest.approx([1.0, 0.3])
    samples, lengths = WaveformFrontEnd()(wav)
    assert torch.equal(samples, wav) and lengths.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="batch, samples"):
        WaveformFrontEnd()(torch.ones(2, 10, 3))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"window_ms": 2}, "too short"),
        ({"conv_kernel_sizes": [5]}, "same length"),
        ({"pool_sizes": [3, 3]}, "one size for the sinc layer"),
        ({"lin_activations": ["relu", "tanh", "relu"]}, "unknown activation"),
    ],
)
def test_bad_configuration(options, message):
    """Inconsistent layer settings are clear errors."""
    with pytest.raises(ValueError, match=message):
        _small(**options)


def test_bad_window_input():
    """Windows of the wrong length and bad shapes are rejected."""
    sincnet = _small()
    with pytest.raises(ValueError, match=r"\[N, 800\]"):
        sincnet.embed_windows(torch.randn(2, 700))
    with pytest.raises(ValueError, match="batch, samples"):
        sincnet(torch.randn(2, 3, 800))


def test_layer_norms_are_sincnets_own():
    """Each channel is normalised over time with the unbiased std + eps, as
    SincNet's code (before: ``nn.LayerNorm`` over channels and time)."""
    from unipool_lobes.models.sincnet import LastAxisLayerNorm

    torch.manual_seed(0)
    x = torch.randn(3, 4, 50) * torch.tensor([1.0, 10.0, 0.1, 3.0])[:, None]
    norm = LastAxisLayerNorm([4, 50])
    expected = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)
    joint = torch.nn.LayerNorm([4, 50], elementwise_affine=False)(x)
    assert not torch.allclose(norm(x), joint, atol=1e-2)
    sincnet = SincNet()
    assert all(
        isinstance(n, LastAxisLayerNorm)
        for n in [sincnet.input_norm, *sincnet.conv_norms, sincnet.flat_norm]
    )
    old = SincNet(layer_norm="torch")
    assert isinstance(old.conv_norms[0], torch.nn.LayerNorm)


def test_window_sets_give_the_authors_trial_score():
    """``eval_output: windows``: 10 evenly spaced windows per utterance
    (one, wrapped, for a short one) and the mean clamped cosine over the
    10 x 10 pairs, as the authors' evaluation loop computes it."""
    from unipool_lobes.scoring.metrics import window_pair_score_trials

    sincnet = _small(eval_num_windows=10, eval_output="windows").eval()
    long_one, short_one = _utterances(4000, 500)
    with torch.no_grad():
        sets = torch.cat([sincnet(long_one[None]), sincnet(short_one[None])])
        batch, lengths = _pad([long_one, short_one])
        batched = sincnet(batch, lengths)
    assert sets.shape == (2, 10, 12)
    torch.testing.assert_close(batched, sets, atol=1e-5, rtol=1e-5)

    # The authors' loop, written out: int(np.linspace) starts, wrap pad.
    import numpy as np

    window = sincnet.window

    def authors_windows(wave):
        if len(wave) <= window:
            padded = np.pad(wave.numpy(), (0, window - len(wave)), "wrap")
            return torch.from_numpy(padded)[None]
        starts = np.linspace(0, len(wave) - window, num=10)
        return torch.stack([wave[int(s) : int(s) + window] for s in starts])

    with torch.no_grad():
        first = F.normalize(sincnet.embed_windows(authors_windows(long_one)))
        second = F.normalize(sincnet.embed_windows(authors_windows(short_one)))
    expected = (first @ second.T).clamp(0, 1).mean()
    score = window_pair_score_trials(sets, ["a", "b"], ["a"], ["b"])
    assert float(score) == pytest.approx(float(expected), abs=1e-5)
