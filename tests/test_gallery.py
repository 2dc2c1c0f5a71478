"""Speaker galleries: enrol, identify, verify, score, and their errors.

The model is the session's ``trained_vctk_run`` (the VCTK recipe, a few
steps on a mini corpus with a tiny local wav2vec2), exported once; its
test manifest has 4 speakers of 6 utterances.
"""

import json
import pathlib
import shutil
import sys
import time

import numpy as np
import processes
import pytest
import safetensors
import safetensors.torch
import soundfile
import torch

from data_prep.common import read_csv
from unipool_lobes.inference import gallery as gallery_module
from unipool_lobes.inference.cli import main
from unipool_lobes.inference.export import export_pretrained
from unipool_lobes.inference.gallery import (
    SpeakerGallery,
    calibrated_speaker_scores,
    model_id,
)
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.scoring.metrics import read_scores
from unipool_lobes.scoring.qmf import QualityCalibration
from unipool_lobes.scoring.score_backend import ScoreBackend
from unipool_lobes.scoring.score_norm import speaker_mean_cohort
from unipool_lobes.utils.safe_io import FolderBusyError


@pytest.fixture(scope="module")
def pretrained(trained_vctk_run, tmp_path_factory):
    """The run exported to a pretrained folder."""
    return export_pretrained(
        trained_vctk_run, tmp_path_factory.mktemp("gallery") / "m"
    )


@pytest.fixture(scope="module")
def verifier(pretrained):
    """The exported folder loaded on the CPU."""
    return SpeakerVerifier.from_hparams(pretrained, run_opts={"device": "cpu"})


@pytest.fixture(scope="module")
def by_speaker(trained_vctk_run):
    """The test files of each speaker (named s0, s1...), in manifest
    order."""
    table = {}
    for row in read_csv(trained_vctk_run / "data" / "test.csv"):
        table.setdefault(row["spk_id"], []).append(row["wav"])
    return {f"s{i}": files for i, files in enumerate(table.values())}


@pytest.fixture(scope="module")
def embedded(verifier, by_speaker):
    """Raw embeddings of every test file, each embedded alone."""
    paths = [path for files in by_speaker.values() for path in files]
    table = verifier.encode_files(paths, batch_size=1, progress=False)
    return dict(zip(paths, table.double(), strict=True))


def _id(path):
    """The manifest id of a test file (its name without extension)."""
    return pathlib.Path(path).stem


def _model(pretrained):
    return ["--model", str(pretrained), "--device", "cpu", "--no-progress"]


def _unit_mean(embedded, paths):
    rows = torch.stack([embedded[path] for path in paths])
    return torch.nn.functional.normalize(rows, dim=1).mean(dim=0)


def _error_of(argv, capsys):
    code = main(argv)
    message = capsys.readouterr().err
    assert code == 2, message
    assert "Traceback" not in message
    line = message.strip().splitlines()[-1]
    assert line.startswith("unipool-sv: error: ")
    return line


def test_enrolment_file_is_plain_safetensors_with_exact_means(
    verifier, pretrained, by_speaker, embedded, tmp_path, capsys
):
    """``enroll`` writes the mean of the L2-normalised embeddings, the
    count, the raw mean and the total duration, readable with plain
    safetensors (catches a mean of raw embeddings, a lost count, a pickle
    or a format that needs unipool-sv to read)."""
    path = tmp_path / "G.safetensors"
    files = by_speaker["s0"][:3]
    assert (
        main(
            [
                "enroll",
                *_model(pretrained),
                "--gallery",
                str(path),
                "--speaker",
                "s0",
                *files,
            ]
        )
        == 0
    )
    assert "3 utterance(s)" in capsys.readouterr().out
    with safetensors.safe_open(str(path), "np") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    assert json.loads(metadata["speakers"]) == ["s0"]
    assert metadata["model_id"] == model_id(verifier)
    size = int(metadata["embedding_size"])
    assert size == next(iter(embedded.values())).shape[0]
    assert tensors["counts"].tolist() == [3]
    expected = _unit_mean(embedded, files).numpy()
    assert np.allclose(tensors["means"][0], expected, atol=1e-5)
    assert not np.allclose(  # not the unit mean of the raw mean
        tensors["means"][0], expected / np.linalg.norm(expected), atol=1e-3
    )
    raw = torch.stack([embedded[f] for f in files]).mean(0).numpy()
    assert np.allclose(tensors["raw_means"][0], raw, atol=1e-4)
    seconds = sum(soundfile.info(f).duration for f in files)
    assert tensors["durations"][0] == pytest.approx(seconds, abs=1e-6)


def test_incremental_enrolment_equals_one_shot(verifier, by_speaker, tmp_path):
    """Adding utterances to an enrolled speaker gives the mean over all
    of them (catches an average of averages or a reset count)."""
    files = by_speaker["s1"][:4]
    once, steps = tmp_path / "once.safetensors", tmp_path / "steps.safetensors"
    verifier.enroll_files(once, "s1", files)
    verifier.enroll_files(steps, "s1", files[:1])
    verifier.enroll_files(steps, "other", by_speaker["s2"][:1])
    verifier.enroll_files(steps, "s1", files[1:])
    one, incremental = SpeakerGallery.load(once), SpeakerGallery.load(steps)
    row = incremental.row_of("s1")
    assert incremental.counts[row] == one.counts[0] == 4
    assert torch.allclose(incremental.means[row], one.means[0], atol=1e-6)
    assert torch.allclose(
        incremental.raw_means[row], one.raw_means[0], atol=1e-6
    )
    assert float(incremental.durations[row]) == pytest.approx(
        float(one.durations[0])
    )


def test_identify_ranks_by_cosine_to_the_speaker_means(
    verifier, pretrained, by_speaker, embedded, tmp_path, capsys
):
    """identify gives the top-k speakers by cosine against the gallery
    means, an enrolled single-utterance speaker finds its own file first
    with score 1, and 'unknown' below the threshold (catches scores
    against one utterance, a wrong ranking or no open-set decision)."""
    path = tmp_path / "G.safetensors"
    enrolled = {name: files[:3] for name, files in by_speaker.items()}
    enrolled["single"] = by_speaker["s3"][5:6]
    for name, files in enrolled.items():
        verifier.enroll_files(path, name, files)
    capsys.readouterr()
    held_out = [files[3] for files in by_speaker.values()]
    tests = [*held_out, enrolled["single"][0]]
    argv = ["identify", *_model(pretrained), "--gallery", str(path)]
    assert main([*argv, "--json", "--top-k", "3", *tests]) == 0
    results = json.loads(capsys.readouterr().out)
    names = list(enrolled)
    means = torch.stack([_unit_mean(embedded, enrolled[n]) for n in names])
    correct = 0
    for test, result in zip(tests, results, strict=True):
        unit = torch.nn.functional.normalize(embedded[test], dim=0)
        cosines = torch.nn.functional.normalize(means, dim=1) @ unit
        order = cosines.argsort(descending=True)[:3].tolist()
        assert [c["speaker"] for c in result["candidates"]] == [
            names[i] for i in order
        ]
        got = [c["score"] for c in result["candidates"]]
        assert np.allclose(got, cosines[order].numpy(), atol=1e-5)
        best = names[order[0]]
        above = float(cosines[order[0]]) > verifier.threshold
        assert result["speaker"] == (best if above else "unknown")
        assert result["file"] == test
        correct += test in by_speaker.get(result["speaker"], [])
    assert results[-1]["candidates"][0]["speaker"] == "single"
    assert results[-1]["score"] == pytest.approx(1.0, abs=1e-5)
    # The 4-step model identifies few held-out files: not asserted.
    assert 0 <= correct <= len(held_out)

    assert main([*argv, "--threshold", "1.5", tests[0]]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .endswith(": unknown (threshold 1.500000)")
    )
    found = verifier.identify_files(path, [tests[-1]], threshold=-1.0)
    assert found[0]["speaker"] == "single"


def test_verify_against_a_gallery_speaker(
    verifier, pretrained, by_speaker, embedded, tmp_path, capsys
):
    """verify --gallery --speaker scores the file against the speaker's
    mean (catches a score against the first enrolled file); misuse of
    the options is a clear error."""
    path = tmp_path / "G.safetensors"
    files = by_speaker["s2"][:3]
    verifier.enroll_files(path, "s2", files)
    test = by_speaker["s2"][4]
    capsys.readouterr()
    argv = ["verify", test, *_model(pretrained), "--gallery", str(path)]
    assert main([*argv, "--speaker", "s2"]) == 0
    printed = capsys.readouterr().out
    score = float(printed.split("score: ")[1].split()[0])
    expected = torch.nn.functional.cosine_similarity(
        _unit_mean(embedded, files), embedded[test], dim=0
    )
    assert score == pytest.approx(float(expected), abs=1e-5)
    assert "decision: " in printed and "'s2'" in printed

    assert "needs --speaker" in _error_of(argv, capsys)
    two = ["verify", test, test, *_model(pretrained), "--gallery", str(path)]
    assert "takes one audio file" in _error_of(
        [*two, "--speaker", "s2"], capsys
    )
    one = ["verify", test, *_model(pretrained)]
    assert "needs two audio files" in _error_of(one, capsys)
    message = _error_of([*argv, "--speaker", "nobody"], capsys)
    assert str(path) in message and "'nobody'" in message
    assert "'s2'" in message  # the known speakers are listed


def test_score_with_speaker_models_on_the_enrol_side(
    trained_vctk_run,
    verifier,
    pretrained,
    by_speaker,
    embedded,
    tmp_path,
    capsys,
):
    """score --gallery: an enrol id naming a gallery speaker is scored by
    the cosine of its mean against the test (catches the name taken as
    an unknown utterance); utterance enrol ids score as before."""
    path = tmp_path / "G.safetensors"
    enrolled = {
        "spk_a": by_speaker["s0"][:3],
        "spk_b": by_speaker["s1"][:2],
    }
    for name, files in enrolled.items():
        verifier.enroll_files(path, name, files)
    ids = {_id(p): p for files in by_speaker.values() for p in files}
    trials = tmp_path / "trials.csv"
    pairs = [
        ("spk_a", _id(by_speaker["s0"][5]), 1),
        ("spk_a", _id(by_speaker["s1"][5]), 0),
        ("spk_b", _id(by_speaker["s1"][4]), 1),
        (_id(by_speaker["s0"][0]), _id(by_speaker["s0"][1]), 1),
    ]
    trials.write_text(
        "enrol,test,label\n" + "".join(f"{e},{t},{y}\n" for e, t, y in pairs)
    )
    manifest = trained_vctk_run / "data" / "test.csv"
    out = tmp_path / "scores"
    argv = [
        "score",
        *_model(pretrained),
        "--trials",
        str(trials),
        "--manifest",
        str(manifest),
        "--no-plots",
        "--out",
        str(out),
    ]
    assert main([*argv, "--gallery", str(path)]) == 0
    lines = (out / "scores.txt").read_text().split("\n")
    scores = {
        tuple(line.split()[:2]): float(line.split()[-1])
        for line in lines
        if line.strip()
    }
    for enrol, test, _ in pairs:
        if enrol in enrolled:
            vector = _unit_mean(embedded, enrolled[enrol])
        else:
            vector = embedded[ids[enrol]]
        expected = torch.nn.functional.cosine_similarity(
            vector, embedded[ids[test]], dim=0
        )
        assert scores[(enrol, test)] == pytest.approx(float(expected), 1e-4)
    capsys.readouterr()
    assert "'spk_a'" in _error_of(argv, capsys)  # without --gallery

    # A VoxCeleb text list under --audio-root: its enrol names too.
    root = pathlib.Path(by_speaker["s0"][0]).parents[1]
    tests = [by_speaker["s0"][5], by_speaker["s1"][4]]
    relative = [pathlib.Path(t).relative_to(root).as_posix() for t in tests]
    listing = tmp_path / "veri.txt"
    listing.write_text(f"1 spk_a {relative[0]}\n0 spk_a {relative[1]}\n")
    out = tmp_path / "vox"
    assert (
        main(
            [
                "score",
                *_model(pretrained),
                "--trials",
                str(listing),
                "--audio-root",
                str(root),
                "--gallery",
                str(path),
                "--no-plots",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    enrol, _, _, got = read_scores(out / "scores.txt")
    assert list(enrol) == ["spk_a", "spk_a"]
    for test, score in zip(tests, got, strict=True):
        expected = torch.nn.functional.cosine_similarity(
            _unit_mean(embedded, enrolled["spk_a"]), embedded[test], dim=0
        )
        assert float(score) == pytest.approx(float(expected), abs=1e-4)


def test_calibrated_identification_uses_the_score_backend(
    verifier, pretrained, by_speaker, embedded, trained_vctk_run, tmp_path
):
    """With a score back-end, identify gives each candidate's calibrated
    LLR: a one-utterance speaker's equals the pair's LLR, a speaker model's
    that of its raw mean and total duration (catches LLRs of the unit
    mean, or none); the model id ignores the back-end files and a copy."""
    folder = tmp_path / "calibrated"
    shutil.copytree(pretrained, folder)
    train = [
        row["wav"] for row in read_csv(trained_vctk_run / "data" / "train.csv")
    ][::3]  # a third of each speaker's files: a cohort of every speaker
    speakers = [p.split("/")[-2] for p in train]
    ids, cohort, mean = speaker_mean_cohort(
        verifier.encode_files(train, progress=False), speakers
    )
    weights = [2.0, 0.3, 0.2, 0.01, -0.02, 0.01, -0.02, 0.5, 0.5]
    calibration = QualityCalibration(weights, -0.5, info={"top_k": 5})
    ScoreBackend(mean, cohort, calibration).save(folder)
    calibrated = SpeakerVerifier.from_hparams(folder)
    assert calibrated.score_backend is not None
    assert model_id(calibrated) == model_id(verifier)

    path = tmp_path / "G.safetensors"
    verifier.enroll_files(path, "single", by_speaker["s0"][:1])
    verifier.enroll_files(path, "many", by_speaker["s1"][:3])
    test = by_speaker["s1"][5]
    found = calibrated.identify_files(path, [test], top_k=2)[0]
    by_name = {c["speaker"]: c for c in found["candidates"]}
    duration = soundfile.info(test).duration
    single = by_speaker["s0"][0]
    llr, probability = calibrated.calibrated_embeddings(
        embedded[single].float()[None],
        embedded[test].float()[None],
        [soundfile.info(single).duration],
        [duration],
    )
    assert by_name["single"]["llr"] == pytest.approx(float(llr[0]), abs=1e-4)
    assert by_name["single"]["probability"] == pytest.approx(
        float(probability[0]), abs=1e-5
    )
    gallery = SpeakerGallery.load(path)
    llr, _ = calibrated.score_backend.score_pairs(
        gallery.raw_means[1:2].float(),
        embedded[test].float()[None],
        [float(gallery.durations[1])],
        [duration],
    )
    assert by_name["many"]["llr"] == pytest.approx(float(llr[0]), abs=1e-4)
    wrong, _ = calibrated_speaker_scores(
        calibrated.score_backend, gallery, [1], embedded[test][None], [1.0]
    )
    assert float(wrong[0]) != pytest.approx(by_name["many"]["llr"], abs=1e-6)
    result = calibrated.verify_against(path, "many", test)
    assert result["llr"] == pytest.approx(by_name["many"]["llr"], abs=1e-6)

    # score --gallery: the speaker trial's calibrated LLR is the same.
    trials = tmp_path / "trials.csv"
    single_id = pathlib.Path(by_speaker["s0"][1]).stem
    trials.write_text(
        f"enrol,test,label\nmany,{_id(test)},1\n{single_id},{_id(test)},0\n"
    )
    out = tmp_path / "scores"
    assert (
        main(
            [
                "score",
                "--model",
                str(folder),
                "--device",
                "cpu",
                "--no-progress",
                "--trials",
                str(trials),
                "--manifest",
                str(trained_vctk_run / "data" / "test.csv"),
                "--gallery",
                str(path),
                "--no-plots",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = (out / "calibrated_scores.txt").read_text().splitlines()
    assert lines[0].split()[:3] == ["many", _id(test), "1"]
    assert float(lines[0].split()[3]) == pytest.approx(
        by_name["many"]["llr"], abs=1e-4
    )
    pair, _ = calibrated.calibrated_embeddings(
        embedded[by_speaker["s0"][1]].float()[None],
        embedded[test].float()[None],
        [soundfile.info(by_speaker["s0"][1]).duration],
        [duration],
    )
    assert float(lines[1].split()[3]) == pytest.approx(float(pair[0]), 1e-4)


def _gallery_bytes(verifier, by_speaker, folder):
    path = folder / "G.safetensors"
    verifier.enroll_files(path, "s0", by_speaker["s0"][:2])
    return path, path.read_bytes()


def test_errors_exit_2_and_leave_the_gallery_unchanged(
    verifier, pretrained, by_speaker, tmp_path, capsys
):
    """Another model, an unknown speaker, an empty enrolment, an
    unreadable file, a corrupt gallery, a folder: exit 2, a message naming
    the file and the cause, the gallery's bytes unchanged (catches a
    corrupt gallery replaced by a new one, losing what was enrolled)."""
    path, before = _gallery_bytes(verifier, by_speaker, tmp_path)
    good = by_speaker["s0"][2]
    enroll = ["enroll", *_model(pretrained), "--gallery", str(path)]

    def refused(argv, *words, target=path):
        message = _error_of(argv, capsys)
        assert str(target) in message, message
        for word in words:
            assert word in message, message
        assert path.read_bytes() == before

    refused([*enroll, "--speaker", "new"], "no audio files")
    unreadable = tmp_path / "unreadable.wav"
    unreadable.write_bytes(b"RIFF....junk")
    refused(
        [*enroll, "--speaker", "s0", good, str(unreadable)],
        "cannot read audio",
        target=unreadable,
    )
    identify = ["identify", *_model(pretrained), good, "--gallery"]
    other = tmp_path / "other.safetensors"
    gallery = SpeakerGallery.load(path)
    gallery.model = "0" * 64
    gallery.save(other)
    other_bytes = other.read_bytes()
    message = _error_of([*identify, str(other)], capsys)
    assert str(other) in message and "another model" in message
    message = _error_of(
        [*enroll[:-1], str(other), "--speaker", "s0", good], capsys
    )
    assert "another model" in message and other.read_bytes() == other_bytes
    small = SpeakerGallery(7, model_id(verifier))
    small.enroll("x", torch.ones(1, 7), [1.0])
    small.save(other)
    message = _error_of([*identify, str(other)], capsys)
    assert "size 7" in message and str(other) in message

    corrupt = {
        "truncated": before[: len(before) // 2],
        "not safetensors": b"just some text, not a gallery",
        "empty": b"",
    }
    for name, data in corrupt.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.safetensors"
        bad.write_bytes(data)
        for argv in (
            [*identify, str(bad)],
            [*enroll[:-1], str(bad), "--speaker", "s0", good],
        ):
            message = _error_of(argv, capsys)
            assert str(bad) in message and "corrupt" in message, name
            assert bad.read_bytes() == data, name
    with safetensors.safe_open(str(path), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata()
    cases = {
        "not a unipool-sv gallery": (tensors, {**metadata, "format": "x"}),
        "bad gallery metadata": (tensors, {**metadata, "speakers": "[1"}),
        "newer": (tensors, {**metadata, "format_version": "99"}),
        "holds NaN": (
            {**tensors, "means": tensors["means"] * float("nan")},
            metadata,
        ),
    }
    for cause, (content, info) in cases.items():
        bad = tmp_path / "bad.safetensors"
        safetensors.torch.save_file(content, str(bad), metadata=info)
        message = _error_of([*identify, str(bad)], capsys)
        assert str(bad) in message and cause in message, message
    folder = tmp_path / "a_folder"
    folder.mkdir()
    message = _error_of([*identify, str(folder)], capsys)
    assert str(folder) in message and "is a folder" in message
    message = _error_of(
        [*enroll[:-1], str(folder), "--speaker", "a", good], capsys
    )
    assert "is a folder" in message
    with pytest.raises(ValueError, match="reserved"):
        verifier.enroll_files(path, "unknown", [good])
    assert path.read_bytes() == before


def test_a_crash_while_saving_keeps_the_old_gallery(
    verifier, by_speaker, tmp_path, monkeypatch
):
    """A writer that fails half-way (a crash) leaves the old gallery whole
    and no temporary file (catches writing in place); another process
    enrolling into the same gallery makes a second writer wait its turn
    with a clear error (catches lost updates of concurrent writers)."""
    path, before = _gallery_bytes(verifier, by_speaker, tmp_path)
    real_open = gallery_module.atomic_open

    class _Failing:
        def __init__(self, target):
            self.target = target

        def write(self, data):
            self.target.write(data[: len(data) // 2])
            raise RuntimeError("injected crash half-way")

    def failing_open(*args, **kwargs):
        import contextlib

        @contextlib.contextmanager
        def _opened():
            with real_open(*args, **kwargs) as target:
                yield _Failing(target)

        return _opened()

    monkeypatch.setattr(gallery_module, "atomic_open", failing_open)
    with pytest.raises(RuntimeError, match="injected"):
        verifier.enroll_files(path, "s1", by_speaker["s1"][:1])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if "G.safe" in p.name] == [
        "G.safetensors"
    ]
    monkeypatch.undo()
    # Another enroll's lock (as lock_target takes it), without torch.
    holder = (
        "import fcntl, os, sys, time\n"
        "handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)\n"
        "fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "os.write(handle, b'{\"pid\": %d}' % os.getpid())\n"
        "open(sys.argv[1] + '.held', 'w').close()\n"
        "time.sleep(60)\n"
    )
    lock_file = tmp_path / ".G.safetensors.unipool-sv.lock"
    with processes.Started(
        [sys.executable, "-c", holder, str(lock_file)], 90
    ) as other:
        while not (tmp_path / f"{lock_file.name}.held").is_file():
            assert other.process.poll() is None and other.remaining() > 0
            time.sleep(0.05)
        with pytest.raises(FolderBusyError, match="in use by"):
            verifier.enroll_files(path, "s1", by_speaker["s1"][:1])
    assert path.read_bytes() == before
