"""The score back-end stored with a model: export, ``score``, verifier.

The model is the session's ``trained_vctk_run`` (a few steps of the VCTK
recipe on a mini corpus). The back-end is fitted on the run's training
utterances with ``evaluate_backend_stages``, written into a copy of the
run folder as the recipe will, exported, and applied.

Authors
 * unipool-sv developers 2026
"""

import json
import shutil

import numpy as np
import pytest
import torch

from data_prep.trials import read_trials
from unipool_lobes.dataio.manifest import read_manifest
from unipool_lobes.inference.cli import main, manifest_utterances
from unipool_lobes.inference.export import ensure_pretrained
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.scoring.calibration import (
    BACKEND_FILES,
    CALIBRATION_FILE,
    evaluate_backend_stages,
    save_score_backend,
)
from unipool_lobes.scoring.metrics import read_scores


def _read_calibrated(path):
    """``enrol test label llr probability`` lines, keyed by the pair."""
    table = {}
    for line in path.read_text().splitlines():
        enrol, test, label, llr, probability = line.split()
        table[(enrol, test)] = (int(label), float(llr), float(probability))
    return table


def _embed(verifier, manifest):
    """Ids, embeddings, durations and speakers of a manifest's rows."""
    utterances = manifest_utterances(manifest)
    ids = list(utterances)
    paths = [utterances[i][0] for i in ids]
    segments = [utterances[i][1] for i in ids]
    embeddings = verifier.encode_files(paths, segments=segments, progress=False)
    durations = verifier.file_durations(paths, segments)
    rows = read_manifest(manifest, {})
    return ids, embeddings, durations, [rows[i]["spk_id"] for i in ids]


def _score(model, run, out):
    """``unipool-sv score`` of the run's test trials into ``out``."""
    return main(
        [
            "score",
            "--model",
            str(model),
            "--trials",
            str(run / "data" / "test_trials.csv"),
            "--manifest",
            str(run / "data" / "test.csv"),
            "--out",
            str(out),
            "--no-plots",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )


def test_stored_back_end_is_exported_and_applied(
    trained_vctk_run, tmp_path, capsys
):
    """A run with the back-end files: the export copies (and checksums)
    them, ``score`` writes the calibrated LLR and probability of every
    trial with Cllr / min Cllr, the verifier gives the same for a pair;
    without the files nothing changes."""
    run = tmp_path / "run"
    shutil.copytree(trained_vctk_run, run, symlinks=True)
    shutil.rmtree(run / "pretrained", ignore_errors=True)
    plain_model = ensure_pretrained(run)
    verifier = SpeakerVerifier.from_hparams(plain_model)
    assert verifier.score_backend is None
    with pytest.raises(ValueError, match="no score back-end"):
        verifier.calibrated_embeddings(
            torch.zeros(1, 4), torch.zeros(1, 4), [1.0], [1.0]
        )
    assert _score(run, run, tmp_path / "plain") == 0
    assert not (tmp_path / "plain" / "calibrated_scores.txt").exists()
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert "calibrated" not in plain and "Cllr" not in plain

    train = _embed(verifier, run / "data" / "train.csv")
    test_ids, test_embeddings, test_durations, _ = _embed(
        verifier, run / "data" / "test.csv"
    )
    trials = read_trials(run / "data" / "test_trials.csv")
    stages, artefacts = evaluate_backend_stages(
        train[1],
        train[3],
        train[2],
        test_embeddings,
        test_ids,
        test_durations,
        trials,
        n_calibration_trials=2000,
    )
    save_score_backend(run, artefacts)  # where the recipe writes them

    # The run changed: the next use exports it again, with the back-end.
    model = ensure_pretrained(run)
    info = json.loads((model / "export.json").read_text())
    for name in BACKEND_FILES:
        assert (model / name).read_bytes() == (run / name).read_bytes()
        assert name in info["files"]
    assert _score(run, run, tmp_path / "calibrated") == 0
    printed = capsys.readouterr().out
    assert "calibrated (QMF)" in printed and "minCllr" in printed
    out = tmp_path / "calibrated"
    results = json.loads((out / "results.json").read_text())
    for key, value in plain.items():  # the plain results are unchanged
        if key not in ("model",):
            assert results[key] == value, key
    calibrated = results["calibrated"]
    qmf = stages["qmf"]["results"]
    assert calibrated["Cllr"] == pytest.approx(qmf["Cllr"], abs=1e-4)
    assert calibrated["minCllr"] == pytest.approx(qmf["minCllr"], abs=1e-4)
    assert calibrated["EER"] == pytest.approx(qmf["EER"], abs=1e-6)
    table = _read_calibrated(out / "calibrated_scores.txt")
    enrol, test, labels, _ = read_scores(out / "scores.txt")
    assert list(table) == list(zip(enrol, test, strict=True))
    assert [row[0] for row in table.values()] == labels.tolist()
    llr = np.array([row[1] for row in table.values()])
    probability = np.array([row[2] for row in table.values()])
    assert np.allclose(llr, stages["qmf"]["scores"].numpy(), atol=1e-4)
    assert np.allclose(probability, 1 / (1 + np.exp(-llr)), atol=1e-9)

    # The verifier of the exported folder: a pair from its audio.
    loaded = SpeakerVerifier.from_hparams(model)
    assert loaded.score_backend is not None
    wav = manifest_utterances(run / "data" / "test.csv")
    first = next(iter(table))
    pair_llr, pair_probability = loaded.calibrated_files(
        wav[first[0]][0], wav[first[1]][0]
    )
    assert pair_llr == pytest.approx(table[first][1], abs=1e-3)
    assert pair_probability == pytest.approx(table[first][2], abs=1e-4)

    # A damaged calibration is refused, naming the file.
    damaged = tmp_path / "damaged"
    shutil.copytree(model, damaged)
    (damaged / CALIBRATION_FILE).write_text("{")
    assert _score(damaged, run, tmp_path / "bad") == 2
    assert CALIBRATION_FILE in capsys.readouterr().err
