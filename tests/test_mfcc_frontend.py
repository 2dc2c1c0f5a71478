"""The authors' MFCC front-end of the x-vector and ECAPA-TDNN baselines.

Before it existed both baselines took SpeechBrain's log Mel filterbanks
(``FbankFrontEnd``): every comparison with the authors' torchaudio
pipeline below failed on that front-end.
"""

import pytest
import torch
import torch.nn.functional as F
import torchaudio

from unipool_lobes.frontends.mfcc import MFCCFrontEnd


def _authors_mfcc(n_mfcc):
    """The authors' feature pipeline, from their settings."""
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=16000,
        n_mfcc=n_mfcc,
        log_mels=False,
        melkwargs={
            "n_fft": 512,
            "win_length": 400,
            "hop_length": 160,
            "f_min": 20,
            "f_max": 7600,
            "window_fn": torch.hamming_window,
            "n_mels": 80,
        },
    )

    def features(wav):
        padded = F.pad(wav.unsqueeze(1), (1, 0), "reflect")
        filt = torch.tensor([[[-0.97, 1.0]]])
        emphasised = F.conv1d(padded, filt).squeeze(1)
        return mfcc(emphasised).transpose(1, 2)

    return features


def _xvector_norm(x):
    mean = x.mean(dim=1, keepdim=True)
    std = ((x - mean) ** 2).mean(dim=1, keepdim=True).sqrt()
    std[std < 1e-8] = 1e-8
    return (x - mean) / std


def _utterances():
    torch.manual_seed(0)
    loud = torch.randn(12000)
    quiet = 1e-4 * torch.randn(16000)
    return loud, quiet


def test_xvector_features_match_the_authors_alone():
    """One utterance (the authors' evaluation): their MFCCs normalised."""
    loud, _ = _utterances()
    ours, lengths = MFCCFrontEnd(n_mfcc=24).eval()(loud[None])
    expected = _xvector_norm(_authors_mfcc(24)(loud[None]))
    assert lengths.tolist() == [1.0]
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_training_batches_floor_db_as_the_authors_batch():
    """Training mode, equal crops: the whole batch's 80 dB floor, as the
    authors' batched torchaudio call; eval mode: each utterance's."""
    loud, quiet = _utterances()
    batch = torch.stack([loud[:8000], quiet[:8000]])
    front_end = MFCCFrontEnd(n_mfcc=80, normalization="frame_l2")
    expected = F.normalize(_authors_mfcc(80)(batch), dim=2)
    ours, _ = front_end.train()(batch)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    alone = F.normalize(_authors_mfcc(80)(batch[1:]), dim=2)
    evaluated, _ = front_end.eval()(batch)
    torch.testing.assert_close(evaluated[1:], alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(evaluated[1:], ours[1:], atol=1e-2)
    per_utterance = MFCCFrontEnd(n_mfcc=80, db_floor="utterance").train()
    torch.testing.assert_close(
        per_utterance(batch)[0][1:],
        _xvector_norm(_authors_mfcc(80)(batch[1:])),
        atol=1e-4,
        rtol=1e-4,
    )


@pytest.mark.parametrize("normalization", ["mean_var", "frame_l2"])
def test_padding_changes_nothing(normalization):
    loud, quiet = _utterances()
    batch = torch.zeros(2, 16000)
    batch[0, :12000] = loud
    batch[1] = quiet
    front_end = MFCCFrontEnd(n_mfcc=24, normalization=normalization).eval()
    feats, lengths = front_end(batch, torch.tensor([0.75, 1.0]))
    alone, _ = front_end(loud[None])
    valid = alone.shape[1]
    assert round(float(lengths[0]) * feats.shape[1]) == valid
    torch.testing.assert_close(feats[0, :valid], alone[0])
    assert torch.all(feats[0, valid:] == 0)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="normalization: 'cmvn'"):
        MFCCFrontEnd(normalization="cmvn")
    with pytest.raises(ValueError, match="db_floor: 'global'"):
        MFCCFrontEnd(db_floor="global")
