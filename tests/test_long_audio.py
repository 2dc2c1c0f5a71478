"""Tests of chunked embedding of long recordings (inference.long_audio).

Authors
 * unipool-sv developers 2026
"""

import argparse

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F

from unipool_lobes.dataio import audio_reading
from unipool_lobes.frontends.ssl import MultiLayerSSL
from unipool_lobes.inference.cli import build_parser, main
from unipool_lobes.inference.cli_long_audio import configure_from_args
from unipool_lobes.inference.long_audio import chunk_windows, window_weights
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.models.unipool.model import UniPool

RATE = 16000


@pytest.fixture(scope="module")
def verifier(local_ssl_model):
    """A tiny wav2vec2 + UniPool verifier (random weights, eval mode)."""
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


@pytest.fixture(autouse=True)
def _default_options(verifier):
    """Each test starts from the default options."""
    verifier.configure_long_audio()
    yield
    verifier.configure_long_audio()


def _write(path, seconds, seed=0):
    """A noise-like wav file; returns (path, waveform as read back)."""
    generator = torch.Generator().manual_seed(seed)
    n_samples = int(seconds * RATE)
    envelope = 0.5 + 0.5 * torch.sin(torch.arange(n_samples) / 900.0) ** 2
    wave = 0.1 * envelope * torch.randn(n_samples, generator=generator)
    soundfile.write(path, wave.numpy(), RATE, subtype="FLOAT")
    return str(path), wave


def _by_hand(verifier, wave, windows):
    """Each window embedded alone, combined as documented: the mean of the
    unit embeddings weighted by the samples nearer each window's centre."""
    units = torch.cat(
        [
            F.normalize(
                verifier.encode_batch(wave[a:b].unsqueeze(0)).reshape(1, -1),
                dim=-1,
            )
            for a, b in windows
        ]
    ).double()
    offset = windows[0][0]
    bounds = [float(offset)]
    for (_, stop), (start, _) in zip(windows[:-1], windows[1:], strict=True):
        bounds.append((stop + start) / 2)
    bounds.append(float(windows[-1][1]))
    shares = torch.tensor(bounds, dtype=torch.float64).diff()
    return (shares.unsqueeze(1) * units).sum(0).float() / shares.sum()


def test_short_file_is_bit_identical_to_the_whole_file_path(verifier, tmp_path):
    """A file not longer than the window gets exactly today's embedding
    (catches short files sent through the window path or re-read)."""
    short, _ = _write(tmp_path / "short.wav", 0.8)
    exact, _ = _write(tmp_path / "exact.wav", 1.0, seed=1)
    verifier.configure_long_audio(chunk_seconds=None)
    whole = verifier.encode_files([short, exact], progress=False)
    verifier.configure_long_audio(chunk_seconds=1.0, chunk_overlap_seconds=0.1)
    chunked = verifier.encode_files([short, exact], progress=False)
    assert torch.equal(whole, chunked)


def test_long_file_is_the_documented_mean_of_its_windows(verifier, tmp_path):
    """A 2.5 s file with 1 s windows and 0.1 s overlap: windows [0, 1),
    [0.9, 1.9) and, shifted back to end at the end, [1.5, 2.5); combined
    as documented (catches a whole-file embedding, a short last window,
    unweighted or unnormalised means). The same with several windows per
    forward pass."""
    path, wave = _write(tmp_path / "long.wav", 2.5)
    windows = [(0, 16000), (14400, 30400), (24000, 40000)]
    assert chunk_windows(40000, 16000, 1600) == windows
    expected = _by_hand(verifier, wave, windows)
    verifier.configure_long_audio(chunk_seconds=1.0, chunk_overlap_seconds=0.1)
    chunked = verifier.encode_files([path], progress=False)[0]
    assert torch.allclose(chunked, expected, atol=1e-5)
    verifier.configure_long_audio(
        chunk_seconds=1.0, chunk_overlap_seconds=0.1, chunk_batch_size=2
    )
    batched = verifier.encode_files([path], progress=False)[0]
    assert torch.allclose(batched, expected, atol=1e-5)
    verifier.configure_long_audio(chunk_seconds=None)
    whole = verifier.encode_files([path], progress=False)[0]
    assert not torch.allclose(F.normalize(whole, dim=0), expected, atol=1e-3)


def test_weights_split_overlaps_at_the_middle():
    """The shares add up to the length, and a reversed layout gives the
    reversed shares (catches weights that favour the first window)."""
    windows = chunk_windows(40000, 16000, 1600)
    shares = window_weights(windows, 40000)
    assert float(shares.sum()) == pytest.approx(1.0)
    mirrored = [(40000 - b, 40000 - a) for a, b in reversed(windows)]
    assert torch.allclose(window_weights(mirrored, 40000), shares.flip(0))
    assert all(b - a == 16000 for a, b in windows)


def test_a_segment_of_a_long_file(verifier, tmp_path):
    """A manifest segment longer than the window is chunked within the
    segment (catches windows taken from the file's start)."""
    path, wave = _write(tmp_path / "long.wav", 4.0)
    segment = (8000, 48000)
    windows = [(8000 + a, 8000 + b) for a, b in chunk_windows(40000, 16000, 0)]
    expected = _by_hand(verifier, wave, windows)
    verifier.configure_long_audio(chunk_seconds=1.0, chunk_overlap_seconds=0)
    found = verifier.encode_files([path], progress=False, segments=[segment])
    assert torch.allclose(found[0], expected, atol=1e-5)


def test_mixed_list_keeps_order_and_layer_weights(verifier, tmp_path):
    """Short and long files in one call come back in input order, with
    layer weights for each (catches rows filled in the wrong place)."""
    long_path, long_wave = _write(tmp_path / "long.wav", 2.5)
    short_path, short_wave = _write(tmp_path / "short.wav", 0.6, seed=3)
    verifier.configure_long_audio(chunk_seconds=1.0, chunk_overlap_seconds=0.1)
    embeddings, weights = verifier.encode_files(
        [short_path, long_path], progress=False, return_layer_weights=True
    )
    short = verifier.encode_batch(short_wave.unsqueeze(0)).reshape(-1)
    assert torch.allclose(embeddings[0], short, atol=1e-5)
    windows = chunk_windows(40000, 16000, 1600)
    assert torch.allclose(
        embeddings[1], _by_hand(verifier, long_wave, windows), atol=1e-5
    )
    per_window = torch.cat(
        [
            verifier._embed(long_wave[a:b].unsqueeze(0), torch.ones(1), True)[1]
            for a, b in windows
        ]
    )
    shares = window_weights(windows, 40000).float().unsqueeze(1)
    assert torch.allclose(weights[1], (shares * per_window).sum(0), atol=1e-5)
    assert weights.shape == (2, per_window.shape[1])


def test_reads_are_bounded_by_the_window(verifier, tmp_path, monkeypatch):
    """A 12 s file with 1 s windows is never read at once: the largest read
    is one window (catches whole-file reads before chunking)."""
    path, _ = _write(tmp_path / "long.wav", 12.0)
    reads = []
    load = audio_reading.load_audio  # the package's one reader

    def recording_load(*args, **kwargs):
        reads.append(kwargs.get("num_frames", -1))
        return load(*args, **kwargs)

    monkeypatch.setattr(audio_reading, "load_audio", recording_load)
    verifier.configure_long_audio(
        chunk_seconds=1.0, chunk_overlap_seconds=0.1, chunk_batch_size=2
    )
    verifier.encode_files([path], progress=False)
    assert len(reads) == len(chunk_windows(12 * RATE, RATE, 1600)) > 12
    assert -1 not in reads and max(reads) == RATE


def test_verify_files_uses_the_windows(verifier, tmp_path):
    """``verify_files`` scores the chunked embeddings (catches it reading
    the files whole)."""
    long_path, _ = _write(tmp_path / "long.wav", 2.5)
    short_path, _ = _write(tmp_path / "short.wav", 0.6, seed=3)
    verifier.configure_long_audio(chunk_seconds=1.0, chunk_overlap_seconds=0.1)
    score, _ = verifier.verify_files(long_path, short_path)
    embeddings = verifier.encode_files([long_path, short_path], progress=False)
    expected = F.cosine_similarity(embeddings[0], embeddings[1], dim=0)
    assert float(score) == pytest.approx(float(expected), abs=1e-6)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"chunk_seconds": -1.0}, "finite number >= 0"),
        ({"chunk_seconds": float("nan")}, "finite number >= 0"),
        ({"chunk_seconds": 0.01}, "shorter than one frame"),
        ({"chunk_seconds": 2.0, "chunk_overlap_seconds": 1.5}, "half"),
        ({"chunk_seconds": 2.0, "chunk_overlap_seconds": -0.1}, "between"),
        ({"chunk_batch_size": 0}, "chunk_batch_size"),
        ({"vad": "webrtc"}, "vad must be"),
    ],
)
def test_bad_options_are_refused(verifier, options, message):
    """Out-of-range options are a ValueError saying why, and leave the
    previous options in place."""
    with pytest.raises(ValueError, match=message):
        verifier.configure_long_audio(**options)
    assert verifier.chunk_seconds == 10.0 and verifier.vad is None


def test_cli_options(verifier):
    """``--chunk-seconds none`` means whole files; a bad value stops the
    parser; the overlap is checked against the window."""
    parser = build_parser()
    for command in (
        ["verify", "a.wav", "b.wav"],
        ["embed", "--list", "l.txt", "--out", "o.npy"],
        ["score", "--trials", "t.csv", "--manifest", "m.csv"],
    ):
        args = parser.parse_args(
            [*command, "--model", "m", "--chunk-seconds", "none"]
        )
        assert args.chunk_seconds is None
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["verify", "a", "b", "--model", "m", "--chunk-seconds", "x"]
        )
    args = argparse.Namespace(chunk_seconds=4.0, chunk_overlap_seconds=3.0)
    with pytest.raises(ValueError, match="--chunk-overlap-seconds"):
        configure_from_args(verifier, args)
    args = argparse.Namespace(chunk_seconds=4.0, chunk_overlap_seconds=None)
    assert configure_from_args(verifier, args).chunk_overlap_seconds == 0.4


def test_score_embeds_whole_utterances_by_default():
    """``score`` evaluates a trial list on whole utterances, as the recipes'
    test stage does (so its EER reproduces theirs); the deployment commands
    window long files by default. Fails if ``score`` takes the 10 s
    default of the others."""
    parser = build_parser()
    score = ["score", "--trials", "t.csv", "--manifest", "m.csv"]
    assert parser.parse_args([*score, "--model", "m"]).chunk_seconds is None
    embed = ["embed", "--list", "l.txt", "--out", "o.npy", "--model", "m"]
    assert parser.parse_args(embed).chunk_seconds == 10.0
    chosen = parser.parse_args([*score, "--model", "m", "--chunk-seconds", "8"])
    assert chosen.chunk_seconds == 8.0


PRETRAINED_YAML = """\
sample_rate: 16000
threshold: 0.5

front_end: &front_end !new:unipool_lobes.frontends.ssl.MultiLayerSSL
  source: {source}

embedding_model: &backend !new:unipool_lobes.models.unipool.UniPool
  input_size: 32
  num_layers: 2
  conv_channels: 8

modules:
  front_end: *front_end
  embedding_model: *backend

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
  loadables:
    embedding_model: *backend
"""


def test_cli_embed_chunks_and_removes_silence(
    local_ssl_model, tmp_path, capsys
):
    """``unipool-sv embed --chunk-seconds 1`` gives the API's chunked
    embedding (catches options parsed but never applied); ``--vad energy``
    on a silent file exits with code 2 naming it."""
    torch.manual_seed(0)
    folder = tmp_path / "model"
    folder.mkdir()
    backend = UniPool(32, 2, conv_channels=8)
    torch.save(backend.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        PRETRAINED_YAML.format(source=local_ssl_model())
    )
    path, _ = _write(tmp_path / "long.wav", 2.5)
    (tmp_path / "list.txt").write_text(f"long\t{path}\n")
    out = tmp_path / "emb.npy"
    options = ["--model", str(folder), "--device", "cpu", "--no-progress"]
    command = ["embed", "--list", str(tmp_path / "list.txt"), "--out"]
    assert main([*command, str(out), *options, "--chunk-seconds", "1"]) == 0
    loaded = SpeakerVerifier.from_hparams(folder, run_opts={"device": "cpu"})
    loaded.configure_long_audio(chunk_seconds=1.0)
    expected = loaded.encode_files([path], progress=False)
    assert np.allclose(np.load(out), expected.numpy(), atol=1e-6)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(RATE, dtype="float32"), RATE)
    (tmp_path / "list.txt").write_text(f"silent\t{silent}\n")
    assert main([*command, str(out), *options, "--vad", "energy"]) == 2
    error = capsys.readouterr().err
    assert "silent.wav: the energy VAD found no speech" in error
