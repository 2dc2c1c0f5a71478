"""The LAP authors' waveform augmentation (unipool_lobes.dataio.augment).

Mini MUSAN and RIRS_NOISES (data_prep.mini_noise) prepared into manifests
once per module; every check recomputes the expected output from the
record of what was drawn, independently of the augmenter's code.

Authors
 * unipool-sv developers 2026
"""

import math
import pickle

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from data_prep.mini_corpus import make_speaker_profile, synthesize_utterance
from data_prep.mini_noise import write_mini_musan, write_mini_rirs
from data_prep.noise_corpora import prepare_noise_corpora
from unipool_lobes.dataio.augment import (
    AUGMENT_TYPES,
    SpeedPerturbation,
    WaveformAugmenter,
)
from unipool_lobes.dataio.manifest import read_manifest

RATE = 16000
CROP = 2 * RATE


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Prepared mini MUSAN and RIRs: ``(musan.csv, rirs.csv)``."""
    root = tmp_path_factory.mktemp("noise")
    speech = []
    for number, speaker in enumerate(("p225", "p226")):
        audio = synthesize_utterance(
            make_speaker_profile(speaker, seed=3),
            np.random.default_rng(number),
            duration=2.5,
        )
        path = root / f"{speaker}.wav"
        soundfile.write(path, audio, RATE)
        speech.append(path)
    write_mini_musan(root, speech, seed=1)
    write_mini_rirs(root, seed=1)
    paths = prepare_noise_corpora(root, root, root / "prep", num_workers=1)
    return paths["musan"], paths["rirs"]


@pytest.fixture(scope="module")
def augmenter(corpora):
    """An augmenter over the mini corpora, the authors' settings."""
    return WaveformAugmenter(*corpora)


def clean_crop(seed, n_samples=CROP):
    """A loud clean crop (mean square far above the 1e-4 floor)."""
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n_samples, generator=generator)


def fitted_noise(rows, noise):
    """Rebuilds one added noise from its record, with numpy."""
    row = rows[noise["id"]]
    audio, _ = soundfile.read(
        row["wav"],
        start=int(row["start"]),
        stop=int(row["stop"]),
        dtype="float32",
        always_2d=True,
    )
    audio = audio.mean(axis=1)
    length = noise["length"]
    if noise["crop_start"] is not None:
        assert audio.shape[0] > length
        return audio[noise["crop_start"] : noise["crop_start"] + length]
    assert audio.shape[0] <= length
    return np.resize(audio, length)  # numpy's wrap-padding


def db(x):
    """The spec's level formula, numpy float64."""
    return 10 * math.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-4)


def test_noise_and_music_snr_is_drawn_in_range_and_realised(augmenter, corpora):
    """The realised SNR (clean level against the added noise's level on
    the region it covers) equals the drawn SNR, which lies in the type's
    range and spreads over it; outside the region the crop is untouched.
    Catches SpeechBrain's amplitude definition (clean scaled down), 20 log10
    for 10 log10, a level taken over the whole crop, a constant SNR."""
    rows = read_manifest(corpora[0])
    ranges = {"noise": (0.0, 15.0), "music": (5.0, 15.0)}
    for kind, (low, high) in ranges.items():
        snrs = []
        for seed in range(40):
            clean = clean_crop(seed)
            generator = torch.Generator().manual_seed(seed)
            out, record = augmenter.apply_type(clean, kind, generator)
            (noise,) = record["noises"]
            start, stop = noise["start"], noise["start"] + noise["length"]
            added = (out - clean).double().numpy()
            assert np.all(added[:start] == 0) and np.all(added[stop:] == 0)
            realised = db(clean.numpy()) - 10 * math.log10(
                np.mean(added[start:stop] ** 2)
            )
            # The 1e-4 floor in the noise's level lowers the gain a little:
            # realised = SNR + 10 log10((ms + 1e-4) / ms), ms the mean
            # square of the noise window as cropped or wrap-padded.
            power = np.mean(fitted_noise(rows, noise).astype(np.float64) ** 2)
            floor = 10 * math.log10((power + 1e-4) / power)
            assert low <= noise["snr"] <= high
            assert realised == pytest.approx(noise["snr"] + floor, abs=1e-3)
            assert floor < 1.0  # the mini noises are loud enough
            snrs.append(noise["snr"])
        assert min(snrs) < low + 0.25 * (high - low)
        assert max(snrs) > high - 0.25 * (high - low)


def test_noise_lengths_follow_the_category_drawn_once(augmenter):
    """Each noise covers the share of the crop its category allows, every
    category occurs, and all babble speakers of a call share one."""
    shares = {"full": (1.0, 1.0), "half": (0.4, 0.6), "third": (0.2, 0.4)}
    seen = set()
    for seed in range(30):
        generator = torch.Generator().manual_seed(seed)
        _, record = augmenter.apply_type(clean_crop(seed), "babble", generator)
        low, high = shares[record["category"]]
        seen.add(record["category"])
        for noise in record["noises"]:
            assert int(low * CROP) <= noise["length"] <= int(high * CROP)
            assert 0 <= noise["start"] <= CROP - noise["length"]
    assert seen == set(shares)


@pytest.mark.parametrize("kind", ["noise", "music", "babble", "television"])
def test_output_is_clean_plus_the_recorded_noises_at_their_snr(
    augmenter, corpora, kind
):
    """The output is rebuilt from the record with numpy: windows read from
    the manifest, cropped or wrap-padded, placed, scaled by
    sqrt(10^((P_ref - P_noise - SNR)/10)) where P_ref is the clean crop's
    level, and, for television's music, the babbled crop's. Catches a
    wrong gain formula, babble speakers measured against each other, TV
    music measured against the clean crop, a bad wrap or placement."""
    rows = read_manifest(corpora[0])
    wrapped = 0
    for seed in range(12):
        # 6 s (phase 3) crops are longer than a window: wrap-padding.
        clean = clean_crop(seed, (RATE // 2, CROP, 6 * RATE)[seed % 3])
        generator = torch.Generator().manual_seed(seed)
        out, record = augmenter.apply_type(clean, kind, generator)
        assert record["type"] == kind
        expected = clean.double().numpy().copy()
        babbled = None
        for noise in record["noises"]:
            pool = {"noise": "noise", "music": "music"}.get(kind, "speech")
            if kind == "television" and noise["pool"] == "music":
                babbled = expected.copy()
                pool = "music"
            assert noise["pool"] == pool
            wrapped += noise["crop_start"] is None
            assert rows[noise["id"]]["type"] == pool
            reference = db(clean.numpy()) if babbled is None else db(babbled)
            assert noise["reference_power"] == pytest.approx(reference)
            fitted = fitted_noise(rows, noise)
            gain = math.sqrt(
                10 ** ((reference - db(fitted) - noise["snr"]) / 10)
            )
            assert noise["gain"] == pytest.approx(gain, rel=1e-5)
            start = noise["start"]
            expected[start : start + noise["length"]] += gain * fitted
        assert out.shape == clean.shape and out.dtype == clean.dtype
        np.testing.assert_allclose(out.numpy(), expected, atol=2e-5)
        if kind == "television":
            assert record["category"] == "full"
            assert babbled is not None
    if kind == "television":  # every 6 s crop wrap-pads its 5 s windows
        assert wrapped >= 4 * 5


def test_babble_mixes_four_to_seven_speakers(augmenter):
    """Babble (and television's babble) adds 4-7 speech windows, every
    count occurs, each at its own SNR in 13-20 dB; television adds one
    music window at 5-15 dB on top."""
    counts = {"babble": set(), "television": set()}
    for seed in range(40):
        for kind in counts:
            generator = torch.Generator().manual_seed(seed)
            _, record = augmenter.apply_type(
                clean_crop(seed, RATE // 4), kind, generator
            )
            speech = [n for n in record["noises"] if n["pool"] == "speech"]
            music = [n for n in record["noises"] if n["pool"] == "music"]
            counts[kind].add(len(speech))
            assert all(13.0 <= n["snr"] <= 20.0 for n in speech)
            assert len({n["snr"] for n in speech}) == len(speech)
            if kind == "television":
                assert len(music) == 1 and 5.0 <= music[0]["snr"] <= 15.0
            else:
                assert not music
    assert counts["babble"] == counts["television"] == {4, 5, 6, 7}


def _single_rir_manifest(folder, name, rir):
    """A RIR manifest of one float wav holding ``rir`` ([time, channels])."""
    path = folder / f"{name}.wav"
    soundfile.write(path, rir, RATE, subtype="FLOAT")
    manifest = folder / f"{name}.csv"
    manifest.write_text(
        f"ID,duration,wav,kind\n{name},{len(rir) / RATE},{path},real\n"
    )
    return manifest


def test_reverb_is_the_convolution_with_the_unit_energy_rir(tmp_path):
    """Reverb output = first N samples of the full convolution with the
    drawn channel divided by its root energy (numpy reference); a 5 times
    louder RIR file gives the same output; the delayed peak is not moved
    back (no delay compensation) nor the level rescaled. Catches
    SpeechBrain's AddReverb (alignment, amplitude rescaling), a missing or
    peak normalisation, a 'same'-mode convolution."""
    rng = np.random.default_rng(0)
    t = np.arange(3000) / RATE
    rir = np.stack(
        [rng.standard_normal(3000) * np.exp(-t / 0.05) for _ in range(2)], 1
    )
    rir[200] = [1.0, -0.8]  # a direct path 200 samples late
    rir = (0.1 * rir / np.abs(rir).max()).astype(np.float32)
    quiet = _single_rir_manifest(tmp_path, "quiet", rir)
    loud = _single_rir_manifest(tmp_path, "loud", 5 * rir)
    outputs = {}
    for name, manifest in (("quiet", quiet), ("loud", loud)):
        augment = WaveformAugmenter(
            None, manifest, probability=1.0, types=("reverb",)
        )
        clean = clean_crop(7, RATE)
        out, record = augment.apply_type(
            clean, "reverb", torch.Generator().manual_seed(5)
        )
        channel = rir[:, record["channel"]].astype(np.float64)
        unit = channel / np.sqrt(np.sum(channel**2))
        expected = np.convolve(clean.double().numpy(), unit)[:RATE]
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
        outputs[name] = out
    torch.testing.assert_close(outputs["quiet"], outputs["loud"])


def test_reverb_draws_every_rir_and_channel(augmenter, corpora):
    """Over many calls every RIR of the pool and both channels of the
    two-channel real RIR are drawn; the output keeps the crop's length."""
    ids = set(read_manifest(corpora[1]))
    drawn, channels = set(), set()
    for seed in range(100):
        clean = clean_crop(seed, RATE // 4)
        out, record = augmenter.apply_type(
            clean, "reverb", torch.Generator().manual_seed(seed)
        )
        assert out.shape == clean.shape
        drawn.add(record["rir"])
        if record["rir"].endswith("air_mini_2"):
            channels.add(record["channel"])
    assert drawn == ids
    assert channels == {0, 1}


def test_probability_and_equal_type_choice(augmenter):
    """With p = 0.6 an item is augmented 60 % of the time and each of the
    five types 12 %; p = 0 never and p = 1 always augments."""
    generator = torch.Generator().manual_seed(0)
    n_draws = 20000
    drawn = [augmenter.draw_type(generator) for _ in range(n_draws)]
    applied = sum(kind is not None for kind in drawn) / n_draws
    assert applied == pytest.approx(0.6, abs=0.015)
    for kind in AUGMENT_TYPES:
        assert drawn.count(kind) / n_draws == pytest.approx(0.12, abs=0.01)
    rirs = augmenter.pools["rir"].manifest
    for probability, expected in ((0.0, {None}), (1.0, {"reverb"})):
        only_reverb = WaveformAugmenter(
            None, rirs, probability, types=("reverb",)
        )
        kinds = {only_reverb.draw_type(generator) for _ in range(200)}
        assert kinds == expected


def test_apply_follows_draw_type_and_leaves_clean_items_alone(augmenter):
    """``apply`` uses ``draw_type``'s decision: same generator seed, same
    type; an item drawn clean comes back identical."""
    for seed in range(30):
        kind = augmenter.draw_type(torch.Generator().manual_seed(seed))
        clean = clean_crop(seed, RATE // 2)
        out, record = augmenter.apply(
            clean, torch.Generator().manual_seed(seed)
        )
        assert record["type"] == kind
        if kind is None:
            assert torch.equal(out, clean)
        else:
            assert not torch.equal(out, clean)


def test_same_seed_same_output_different_seed_different(augmenter):
    """Bit-identical output for the same generator seed, for every type
    and for the full augmenter; another seed gives another output; with
    no generator, torch's global seed decides."""
    clean = clean_crop(0)
    for kind in AUGMENT_TYPES:
        first, second, *others = (
            augmenter.apply_type(
                clean, kind, torch.Generator().manual_seed(seed)
            )[0]
            for seed in (11, 11, 12, 13, 14)
        )
        assert torch.equal(first, second), kind
        # Reverb over 6 RIRs may draw the same one for another seed.
        assert not all(torch.equal(first, other) for other in others), kind
    runs = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(3)
        runs.append([augmenter(clean, generator) for _ in range(10)])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    global_runs = []
    for _ in range(2):
        torch.manual_seed(4)
        global_runs.append(augmenter.apply_type(clean, "babble")[0])
    assert torch.equal(*global_runs)


def test_speed_perturbation_offsets_lengths_and_pitch():
    """Offsets 0/1/2 for 1.0/0.9/1.1 and 3 classes; 0.9 makes N samples
    ceil(N/0.9) and a 1 kHz tone 900 Hz (slower, lower), 1.1 the reverse;
    the resampling is torchaudio's 9 -> 10 / 11 -> 10; factors are drawn
    0.6/0.2/0.2; a list of only 1.0 gives one class and no change."""
    speed = SpeedPerturbation()
    assert speed.classes_per_speaker == 3
    assert speed.offsets == {1.0: 0, 0.9: 1, 1.1: 2}
    n = RATE
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(n) / RATE)
    for factor, new_length, pitch, ratio in (
        (0.9, math.ceil(n / 0.9), 900, (9, 10)),
        (1.1, math.ceil(n / 1.1), 1100, (11, 10)),
    ):
        out = speed.perturb(tone, factor)
        assert out.shape[0] == new_length
        reference = torchaudio.functional.resample(tone, *ratio)
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
        spectrum = torch.fft.rfft(
            out[2000:-2000] * torch.hann_window(out.shape[0] - 4000)
        ).abs()
        peak = spectrum.argmax().item() * RATE / (out.shape[0] - 4000)
        assert peak == pytest.approx(pitch, abs=5)
    assert torch.equal(speed.perturb(tone, 1.0), tone)
    generator = torch.Generator().manual_seed(0)
    factors = [speed.draw(generator) for _ in range(5000)]
    for factor, share in ((1.0, 0.6), (0.9, 0.2), (1.1, 0.2)):
        assert factors.count(factor) / 5000 == pytest.approx(share, abs=0.025)
    for seed in range(10):  # __call__ applies draw()'s factor
        factor = speed.draw(torch.Generator().manual_seed(seed))
        out, offset = speed(tone, torch.Generator().manual_seed(seed))
        assert offset == speed.offsets[factor]
        assert torch.equal(out, speed.perturb(tone, factor))
    only = SpeedPerturbation((1.0,))
    assert only.classes_per_speaker == 1
    signal, offset = only(tone)
    assert offset == 0 and torch.equal(signal, tone)
    custom = SpeedPerturbation((1.1, 1.0, 0.95, 1.1))
    assert custom.offsets == {1.0: 0, 1.1: 1, 0.95: 2}
    with pytest.raises(ValueError, match="lack 1.0"):
        SpeedPerturbation((0.9, 1.1))


def test_speed_perturbation_is_reproducible():
    """Same generator seed, same factor and samples; the draw goes through
    the generator, not a global state."""
    speed = SpeedPerturbation()
    signal = clean_crop(1, 4000)
    first = [speed(signal, torch.Generator().manual_seed(s)) for s in range(8)]
    again = [speed(signal, torch.Generator().manual_seed(s)) for s in range(8)]
    for (a, offset_a), (b, offset_b) in zip(first, again, strict=True):
        assert offset_a == offset_b and torch.equal(a, b)
    assert len({offset for _, offset in first}) > 1


def test_bad_manifests_are_named(tmp_path, corpora):
    """A missing column, a missing file, a wrong sample rate and an empty
    pool each raise a ValueError naming the manifest (and line)."""
    header = "ID,duration,wav,start,stop,type\n"
    no_type = tmp_path / "no_type.csv"
    no_type.write_text("ID,duration,wav,start,stop\nn,5,/x.wav,0,10\n")
    with pytest.raises(ValueError, match=r"no_type\.csv.*missing column"):
        WaveformAugmenter(no_type, None, types=("noise",))
    missing = tmp_path / "missing.csv"
    missing.write_text(header + f"n,5,{tmp_path / 'absent.wav'},0,10,noise\n")
    with pytest.raises(ValueError, match=r"missing\.csv:2 .*absent\.wav"):
        WaveformAugmenter(missing, None, types=("noise",))
    wav8k = tmp_path / "8k.wav"
    soundfile.write(wav8k, np.zeros(8000, dtype=np.float32), 8000)
    wrong_rate = tmp_path / "rate.csv"
    wrong_rate.write_text(header + f"n,1,{wav8k},0,8000,noise\n")
    augment = WaveformAugmenter(wrong_rate, None, types=("noise",))
    with pytest.raises(ValueError, match=r"rate\.csv:2 .*8000 Hz"):
        augment.apply_type(clean_crop(0, 100), "noise")
    with pytest.raises(ValueError, match=r"rate\.csv: no speech item"):
        WaveformAugmenter(wrong_rate, None, types=("babble",))
    with pytest.raises(ValueError, match="RIR manifest"):
        WaveformAugmenter(corpora[0], None, types=("reverb", "noise"))
    with pytest.raises(ValueError, match="not among"):
        WaveformAugmenter(corpora[0], corpora[1], types=("echo",))
    only_noise = WaveformAugmenter(corpora[0], None, types=("noise",))
    with pytest.raises(ValueError, match=r"'reverb' needs the \['rir'\]"):
        only_noise.apply_type(clean_crop(0, 100), "reverb")
    with pytest.raises(ValueError, match="1-D"):
        WaveformAugmenter(*corpora)(torch.zeros(2, 100))


class _Items(torch.utils.data.Dataset):
    """Clean crops augmented with torch's global generator (a worker's)."""

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return self.augmenter(clean_crop(index, RATE // 4))


def test_loader_workers_reproduce_with_the_main_seed(augmenter):
    """Pickled into two loader workers with no generator given, the
    augmenter draws from each worker's torch generator, which PyTorch
    seeds from the main seed: the same seed gives the same batches, bit
    for bit; another seed other batches."""
    copy = pickle.loads(pickle.dumps(augmenter))
    clean = clean_crop(0)
    for kind in AUGMENT_TYPES:
        first = augmenter.apply_type(clean, kind, torch.Generator())[0]
        again = copy.apply_type(clean, kind, torch.Generator())[0]
        assert torch.equal(first, again)

    def batches(seed):
        torch.manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            _Items(augmenter), batch_size=4, num_workers=2
        )
        return torch.cat(list(loader))

    first, second, other = batches(5), batches(5), batches(6)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
