"""Tests of silence removal before embedding (inference.vad).

A real LibriSpeech utterance (``../shared``; skipped without it) padded
with 5 s of low-level noise (-60 dBFS) before, between two halves of it
and after: with a VAD its embedding matches the unpadded one's, without
a VAD it does not.

Authors
 * unipool-sv developers 2026
"""

import pathlib

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from speechbrain.dataio.preprocess import AudioNormalizer

from unipool_lobes.frontends.ssl import MultiLayerSSL
from unipool_lobes.inference.audio import AudioInputError
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.inference.vad import speech_spans
from unipool_lobes.models.unipool.model import UniPool

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared/data"
SPEECH = (
    SHARED
    / "librispeech_real_sample/train-clean-100/1363/135842"
    / "1363-135842-0000.flac"
)
needs_speech = pytest.mark.skipif(
    not SPEECH.is_file(),
    reason="real LibriSpeech sample not found at ../shared",
)
RATE = 16000
NOISE_DBFS = -60.0
# Measured with this tiny random model (seed 0): without VAD 0.82; with the
# energy VAD 0.986, with silero 0.995.
MATCH = 0.98
NO_MATCH = 0.95


@pytest.fixture(scope="module")
def verifier(local_ssl_model):
    """A tiny wav2vec2 + UniPool verifier (random weights), whole files."""
    torch.manual_seed(0)
    built = SpeakerVerifier(
        modules={
            "front_end": MultiLayerSSL(local_ssl_model()),
            "embedding_model": UniPool(32, 2, conv_channels=8),
        },
        hparams={"threshold": 0.5},
        run_opts={"device": "cpu"},
    )
    built.mods.eval()
    return built


def _noise(seconds, generator):
    """Gaussian noise at ``NOISE_DBFS`` RMS."""
    scale = 10 ** (NOISE_DBFS / 20)
    count = int(seconds * RATE)
    return (scale * generator.standard_normal(count)).astype("float32")


@pytest.fixture(scope="module")
def padded_files(tmp_path_factory):
    """``(clean, padded)`` wav paths: the utterance, and it cut at its
    quietest 100 ms of the middle third with 5 s of noise around."""
    folder = tmp_path_factory.mktemp("vad")
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    assert rate == RATE
    third = len(speech) // 3
    frames = np.lib.stride_tricks.sliding_window_view(
        speech[third : 2 * third], 1600
    )[::160]
    cut = third + int(np.argmin((frames**2).mean(axis=1))) * 160 + 800
    generator = np.random.default_rng(0)
    padded = np.concatenate(
        [
            _noise(5, generator),
            speech[:cut],
            _noise(5, generator),
            speech[cut:],
            _noise(5, generator),
        ]
    )
    clean, noisy = folder / "clean.wav", folder / "padded.wav"
    soundfile.write(clean, speech, RATE, subtype="FLOAT")
    soundfile.write(noisy, padded, RATE, subtype="FLOAT")
    return str(clean), str(noisy)


def _cosine(a, b):
    return float(F.cosine_similarity(a, b, dim=0))


@needs_speech
@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_vad_embedding_matches_the_unpadded_one(verifier, padded_files, vad):
    """With the VAD the padded file's embedding is close to the clean
    file's; without it, clearly not (catches a VAD that keeps the noise,
    or one that is not applied)."""
    clean, padded = padded_files
    verifier.configure_long_audio(chunk_seconds=None)
    reference = verifier.encode_files([clean], progress=False)[0]
    plain = verifier.encode_files([padded], progress=False)[0]
    verifier.configure_long_audio(chunk_seconds=None, vad=vad)
    try:
        trimmed = verifier.encode_files([padded], progress=False)[0]
    finally:
        verifier.configure_long_audio()
    assert _cosine(plain, reference) < NO_MATCH
    assert _cosine(trimmed, reference) >= MATCH


@needs_speech
@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_spans_keep_the_speech_and_drop_the_noise(padded_files, vad):
    """The speech ranges lie around the two halves, and reading in small
    blocks gives the same ranges as one block (catches a detector whose
    state or threshold restarts per block)."""
    clean, padded = padded_files
    normalizer = AudioNormalizer(RATE)
    spans = speech_spans(padded, vad, normalizer)
    assert speech_spans(padded, vad, normalizer, block_seconds=1.0) == spans
    kept = sum(b - a for a, b in spans) / RATE
    speech_seconds = soundfile.info(clean).duration
    assert 0.6 * speech_seconds < kept < speech_seconds + 1.0
    end = soundfile.info(padded).frames
    assert spans[0][0] > 4.5 * RATE and spans[-1][1] < end - 4.5 * RATE


@needs_speech
@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_vad_works_with_windows(verifier, tmp_path, vad):
    """VAD then chunking: speech between 3 s of noise on each side, longer
    than the window, is embedded by windows of the speech only (catches
    windows over the whole file)."""
    generator = np.random.default_rng(1)
    speech, _ = soundfile.read(SPEECH, dtype="float32")
    path = tmp_path / "long.wav"
    soundfile.write(
        path,
        np.concatenate([_noise(3, generator), speech, _noise(3, generator)]),
        RATE,
        subtype="FLOAT",
    )
    verifier.configure_long_audio(chunk_seconds=4.0, vad=vad)
    try:
        plan = verifier._long_audio_plan(
            [str(path)],
            None,
            {"batch_size": 1, "return_layer_weights": False},
        )
        embedding = verifier.encode_files([str(path)], progress=False)
    finally:
        verifier.configure_long_audio()
    kind, spans, _ = plan[2][0]
    assert kind == "windows" and spans[0][0] > 2.5 * RATE
    assert torch.isfinite(embedding).all()


@pytest.mark.parametrize("vad", ["energy", "silero"])
@pytest.mark.parametrize("level", [None, NOISE_DBFS])
def test_a_file_without_speech_is_an_error_naming_it(
    verifier, tmp_path, vad, level
):
    """Digital silence or background noise only: AudioInputError naming the
    file and the VAD (the documented behaviour; catches embedding noise)."""
    path = tmp_path / "silence.wav"
    if level is None:
        signal = np.zeros(3 * RATE, dtype="float32")
    else:
        signal = _noise(3, np.random.default_rng(2))
    soundfile.write(path, signal, RATE, subtype="FLOAT")
    verifier.configure_long_audio(vad=vad)
    try:
        with pytest.raises(AudioInputError, match=f"silence.wav: the {vad}"):
            verifier.encode_files([str(path)], progress=False)
    finally:
        verifier.configure_long_audio()
