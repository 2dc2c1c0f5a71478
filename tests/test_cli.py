"""The ``unipool-sv`` command: export, verify, embed, score, and errors.

The model is the session's ``trained_vctk_run`` (the VCTK recipe, a few
steps on a mini corpus with a tiny local wav2vec2).
"""

import json
import os
import pathlib
import shutil
import sys

import numpy as np
import processes
import pytest
import soundfile
import torch

from data_prep.common import read_csv, write_csv_atomic
from data_prep.trials import read_trials
from unipool_lobes.inference.cli import default_score_folder, main
from unipool_lobes.inference.export import export_pretrained
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.scoring.metrics import read_scores
from unipool_lobes.scoring.score_norm import ScoreNormalizer


@pytest.fixture(scope="module")
def run(trained_vctk_run, tmp_path_factory):
    """A copy of the trained run (the CLI writes into it)."""
    copy = tmp_path_factory.mktemp("cli") / "run"
    shutil.copytree(trained_vctk_run, copy, symlinks=True)
    # The manifests name the original run's audio, which stays in place.
    return copy


@pytest.fixture(scope="module")
def pretrained(run, tmp_path_factory):
    """The run exported to a pretrained folder."""
    return export_pretrained(run, tmp_path_factory.mktemp("cli_export") / "m")


@pytest.fixture(scope="module")
def test_rows(run):
    """Rows of the run's test manifest."""
    return read_csv(run / "data" / "test.csv")


def _unipool_sv():
    return str(pathlib.Path(sys.executable).parent / "unipool-sv")


def _scores_by_pair(path):
    enrol, test, labels, scores = read_scores(path)
    return {(e, t): s for e, t, s in zip(enrol, test, scores, strict=True)}


def test_score_reproduces_the_run_offline_in_a_new_process(run):
    """`unipool-sv score` on a run folder gives the run's test EER."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    hparams = (run / "hyperparams.yaml").read_text()
    assert "eval_batch_size: 16" in hparams
    done = processes.run(
        [
            _unipool_sv(),
            "score",
            "--model",
            str(run),
            "--trials",
            str(run / "data" / "test_trials.csv"),
            "--manifest",
            str(run / "data" / "test.csv"),
            "--batch-size",
            "16",
            "--device",
            "cpu",
        ],
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (run / "pretrained" / "hyperparams.yaml").is_file()
    out = default_score_folder(
        run, run / "data" / "test_trials.csv", run / "data" / "test.csv"
    )
    for name in (
        "scores.txt",
        "results.json",
        "det.png",
        "layer_significance.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "det.png").read_bytes()[:4] == b"\x89PNG"

    expected = json.loads((run / "results.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert results["n_trials"] == expected["n_trials"]
    assert results["EER"] == pytest.approx(expected["EER"], abs=1e-4)
    for key in ("norm_minDCF_p0.01", "min_Cdet_p0.05"):
        assert results[key] == pytest.approx(expected[key], abs=1e-4)
    ours = _scores_by_pair(out / "scores.txt")
    theirs = _scores_by_pair(run / "scores.txt")
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-5
    assert results["calibrated_threshold"]["value"] == pytest.approx(
        SpeakerVerifier.from_hparams(run / "pretrained").threshold
    )
    assert "EER" in done.stdout and str(out) in done.stdout


def test_score_with_an_audio_root_and_voxceleb_trials(
    run, pretrained, tmp_path
):
    """Cross-dataset form: a VoxCeleb text list of paths under a root."""
    manifest_scores = tmp_path / "by_manifest"
    assert (
        main(
            [
                "score",
                "--model",
                str(pretrained),
                "--trials",
                str(run / "data" / "test_trials.csv"),
                "--manifest",
                str(run / "data" / "test.csv"),
                "--out",
                str(manifest_scores),
                "--no-plots",
                "--no-progress",
            ]
        )
        == 0
    )
    trials = read_trials(run / "data" / "test_trials.csv")
    wav_of = {
        row["ID"]: row["wav"] for row in read_csv(run / "data" / "test.csv")
    }
    root = pathlib.Path(wav_of[trials["enrol"][0]]).parents[1]
    lines = []
    for enrol, test, label in zip(
        trials["enrol"], trials["test"], trials["label"], strict=True
    ):
        relative = [
            pathlib.Path(wav_of[u]).relative_to(root).as_posix()
            for u in (enrol, test)
        ]
        lines.append(f"{label} {relative[0]} {relative[1]}\n")
    voxceleb_list = tmp_path / "veri.txt"
    voxceleb_list.write_text("".join(lines))

    out = tmp_path / "by_root"
    code = main(
        [
            "score",
            "--model",
            str(pretrained),
            "--trials",
            str(voxceleb_list),
            "--audio-root",
            str(root),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    by_root = read_scores(out / "scores.txt")[3]
    by_manifest = read_scores(manifest_scores / "scores.txt")[3]
    assert np.allclose(by_root, by_manifest, atol=1e-5)
    assert (out / "layer_significance.png").is_file()


def test_score_with_s_norm(run, pretrained, tmp_path):
    """--norm s-norm --cohort normalises with the cohort's embeddings."""
    cohort_rows = read_csv(run / "data" / "train.csv")[:12]
    cohort = tmp_path / "cohort.csv"
    write_csv_atomic(cohort, cohort_rows, list(cohort_rows[0]))
    out = tmp_path / "norm"
    code = main(
        [
            "score",
            "--model",
            str(pretrained),
            "--trials",
            str(run / "data" / "test_trials.csv"),
            "--manifest",
            str(run / "data" / "test.csv"),
            "--out",
            str(out),
            "--norm",
            "s-norm",
            "--cohort",
            str(cohort),
            "--top-k",
            "5",
            "--no-plots",
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["norm"] == "s-norm" and results["top_k"] == 5

    verifier = SpeakerVerifier.from_hparams(pretrained)
    rows = read_csv(run / "data" / "test.csv")
    ids = [row["ID"] for row in rows]
    embeddings = verifier.encode_files([r["wav"] for r in rows], progress=False)
    cohort_embeddings = verifier.encode_files(
        [r["wav"] for r in cohort_rows], progress=False
    )
    # The run's own raw scores (equal to ours, see the test above).
    enrol, test, _, raw = read_scores(run / "scores.txt")
    expected = ScoreNormalizer(cohort_embeddings, 5, "s-norm")(
        embeddings, ids, enrol, test, raw_scores=torch.tensor(raw)
    )
    by_pair = _scores_by_pair(out / "scores.txt")
    normalised = np.array(
        [by_pair[pair] for pair in zip(enrol, test, strict=True)]
    )
    assert np.allclose(normalised, expected.numpy(), atol=1e-4)
    assert not np.allclose(normalised, raw, atol=1e-3)


def test_verify_prints_score_and_decision(pretrained, test_rows, capsys):
    """verify prints the score of verify_files and the decision."""
    first, second = test_rows[0]["wav"], test_rows[-1]["wav"]
    code = main(["verify", first, second, "--model", str(pretrained)])
    assert code == 0
    printed = capsys.readouterr().out
    score = float(printed.split("score: ")[1].split()[0])
    verifier = SpeakerVerifier.from_hparams(pretrained)
    expected, decision = verifier.verify_files(first, second)
    assert score == pytest.approx(float(expected), abs=1e-5)
    verdict = "same speaker" if bool(decision) else "different speakers"
    assert f"decision: {verdict}" in printed

    main(
        [
            "verify",
            first,
            second,
            "--model",
            str(pretrained),
            "--threshold",
            "2",
        ]
    )
    assert "different speakers (threshold 2.0" in capsys.readouterr().out


def test_embed_to_npy_and_to_a_folder(pretrained, test_rows, tmp_path):
    """embed writes ids + embeddings in list order, as one file or many."""
    paths = [row["wav"] for row in test_rows[:5]]
    listing = tmp_path / "files.txt"
    listing.write_text(
        f"# a comment\nfirst\t{paths[0]}\n"
        + "".join(f"{path}\n" for path in paths[1:])
    )
    out = tmp_path / "emb.npy"
    assert (
        main(
            [
                "embed",
                "--model",
                str(pretrained),
                "--list",
                str(listing),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = np.load(out)
    ids = (tmp_path / "emb_ids.txt").read_text().split()
    assert ids == ["first"] + [pathlib.Path(p).stem for p in paths[1:]]
    verifier = SpeakerVerifier.from_hparams(pretrained)
    expected = verifier.encode_files(paths, progress=False).numpy()
    assert table.shape == (5, 192) and np.allclose(table, expected, atol=1e-5)

    folder = tmp_path / "emb"
    assert (
        main(
            [
                "embed",
                "--model",
                str(pretrained),
                "--list",
                str(listing),
                "--out",
                str(folder),
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.stem for p in folder.glob("*.npy")) == sorted(ids)
    assert json.loads((folder / "embed.json").read_text())["count"] == 5
    assert np.allclose(np.load(folder / f"{ids[3]}.npy"), table[3])


def test_export_command(run, tmp_path, capsys):
    """export writes the folder once; a second time needs --overwrite."""
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out)]) == 0
    assert (out / "hyperparams.yaml").is_file()
    assert main(["export", str(run), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["export", str(run), str(out), "--overwrite", "--no-classifier"])
        == 0
    )
    assert not (out / "classifier.ckpt").exists()


def _error_of(argv, capsys):
    code = main(argv)
    message = capsys.readouterr().err
    assert code == 2, message
    assert "Traceback" not in message
    last_line = message.strip().splitlines()[-1]
    assert last_line.startswith("unipool-sv: error: ")
    return last_line


def test_bad_input_exits_with_code_2(
    run, pretrained, test_rows, tmp_path, capsys
):
    """Missing/unreadable/short audio, unknown utterances: named, exit 2."""
    model = ["--model", str(pretrained), "--no-progress"]
    good = test_rows[0]["wav"]
    missing = str(tmp_path / "missing.wav")
    assert missing in _error_of(["verify", good, missing, *model], capsys)

    unreadable = tmp_path / "unreadable.wav"
    unreadable.write_bytes(b"RIFF....junk")
    message = _error_of(["verify", str(unreadable), good, *model], capsys)
    assert "cannot read audio file" in message and str(unreadable) in message

    short = tmp_path / "short.wav"
    soundfile.write(short, np.ones(200, dtype="float32"), 16000)
    message = _error_of(["verify", good, str(short), *model], capsys)
    assert str(short) in message and "at least 400 samples (25 ms" in message

    listing = tmp_path / "files.txt"
    listing.write_text(f"{good}\n{short}\n")
    message = _error_of(
        ["embed", *model, "--list", str(listing), "--out", str(tmp_path / "e")],
        capsys,
    )
    assert str(short) in message

    rows = read_csv(run / "data" / "test.csv")
    partial = tmp_path / "partial.csv"
    write_csv_atomic(partial, rows[1:], list(rows[0]))
    trials = run / "data" / "test_trials.csv"
    message = _error_of(
        ["score", *model, "--trials", str(trials), "--manifest", str(partial)],
        capsys,
    )
    assert str(trials) in message and str(partial) in message
    removed = rows[0]["ID"]
    listed = read_trials(trials)
    first = next(
        number
        for number, pair in enumerate(
            zip(listed["enrol"], listed["test"], strict=True), start=1
        )
        if removed in pair
    )
    assert repr(removed) in message and f"trial {first} " in message

    message = _error_of(
        ["verify", good, good, "--model", str(tmp_path / "no_model")], capsys
    )
    assert str(tmp_path / "no_model") in message
