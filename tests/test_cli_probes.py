"""What a new user tried with ``unipool-sv`` and the interface, and got
wrong before: each test names the old behaviour it fails on.

The model is a copy of the session's ``trained_vctk_run``.
"""

import os
import shutil

import numpy as np
import processes
import pytest
import soundfile
import torch
from filesystems import fill_disk

from data_prep.common import read_csv
from unipool_lobes.inference.cli import main, read_file_list
from unipool_lobes.inference.export import best_checkpoint, export_pretrained
from unipool_lobes.inference.speaker import AudioInputError, SpeakerVerifier
from unipool_lobes.training.checkpoints import CheckpointCorruptError


@pytest.fixture(scope="module")
def run(trained_vctk_run, tmp_path_factory):
    """A copy of the trained run, in a folder of its own."""
    copy = tmp_path_factory.mktemp("probes") / "runs" / "run"
    shutil.copytree(trained_vctk_run, copy, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def pretrained(run, tmp_path_factory):
    """The run exported."""
    return export_pretrained(run, tmp_path_factory.mktemp("probe_export") / "m")


@pytest.fixture(scope="module")
def wavs(run):
    """Two test utterances of the run."""
    rows = read_csv(run / "data" / "test.csv")
    return rows[0]["wav"], rows[-1]["wav"]


def _embed_argv(model, listing, out):
    return [
        "embed",
        "--model",
        str(model),
        "--list",
        str(listing),
        "--out",
        str(out),
        "--no-progress",
    ]


def _score_argv(model, trials, manifest, *extra):
    return [
        "score",
        "--model",
        str(model),
        "--trials",
        str(trials),
        "--manifest",
        str(manifest),
        *map(str, extra),
    ]


def _error(argv, capsys):
    """Runs the CLI expecting a one-line error (exit 2); the line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# ----------------------------------------------------------------- export
def test_export_overwrite_never_replaces_the_run_or_its_parent(
    run, tmp_path, capsys
):
    """--overwrite onto the run's parent or the run itself is refused and
    deletes nothing (before: both were deleted, exit 0); onto a folder that
    is not an export it is refused too."""
    parent = run.parent
    before = sorted(p.name for p in parent.rglob("*"))
    for target in (parent, run):
        line = _error(["export", str(run), str(target), "--overwrite"], capsys)
        assert "refusing to export" in line
    assert sorted(p.name for p in parent.rglob("*")) == before
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"jpg")
    line = _error(["export", str(run), str(stranger), "--overwrite"], capsys)
    assert "is not a unipool-sv export" in line
    assert (stranger / "holiday.jpg").is_file()


def test_export_cleans_up_after_a_killed_export(run, tmp_path):
    """A staging folder left by a killed export is removed by the next
    (before: left forever)."""
    out = tmp_path / "m"
    stale = tmp_path / ".m.tmp-killed"
    stale.mkdir()
    (stale / "embedding_model.ckpt").write_bytes(b"half")
    export_pretrained(run, out)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_export_honours_the_umask(run, tmp_path):
    """The exported folder is 0755 and its files 0644 under umask 022
    (before: 0700, unreadable to other users)."""
    previous = os.umask(0o022)
    try:
        out = export_pretrained(run, tmp_path / "m")
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o755
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_export_to_a_full_disk_keeps_the_previous_export(run, tmpfs, capsys):
    """ENOSPC while exporting: one line naming the file and the full disk,
    exit 2, and the earlier export still loads."""
    disk = tmpfs.mount("48m")
    out = disk / "m"
    assert main(["export", str(run), str(out)]) == 0
    fill_disk(disk, leave_bytes=512 * 1024)
    line = _error(["export", str(run), str(out), "--overwrite"], capsys)
    assert "the disk is full" in line and str(disk) in line
    SpeakerVerifier.from_hparams(out)
    assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "m"]


# ------------------------------------------------------- corrupt checkpoints
def _damaged_run(run, tmp_path, damage):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    shutil.rmtree(copy / "pretrained", ignore_errors=True)
    checkpoint, _ = best_checkpoint(copy)
    target = checkpoint / "embedding_model.ckpt"
    data = bytearray(target.read_bytes())
    target.write_bytes(damage(data))
    return copy, target


def test_flipped_bytes_in_a_checkpoint_are_caught(run, tmp_path, capsys):
    """64 flipped bytes in embedding_model.ckpt: export and verify fail
    naming the file (before: exit 0, 'score: nan')."""

    def flip(data):
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(
            b ^ 0xFF for b in data[middle : middle + 64]
        )
        return bytes(data)

    copy, target = _damaged_run(run, tmp_path, flip)
    line = _error(["export", str(copy), str(tmp_path / "m")], capsys)
    assert str(target) in line and "does not match the SHA-256" in line


def test_truncated_checkpoint_is_named(run, tmp_path, capsys):
    """A truncated embedding_model.ckpt: the run has no complete checkpoint
    left to export, and the message names the checkpoint and the file
    (before: exit 0, then a traceback not naming the file)."""
    copy, target = _damaged_run(run, tmp_path, lambda data: bytes(data[:1000]))
    line = _error(["export", str(copy), str(tmp_path / "m")], capsys)
    assert "no complete checkpoint" in line and str(target.parent) in line
    assert "embedding_model.ckpt is not the size it was saved with" in line


def test_a_changed_export_file_is_refused_at_load(pretrained, tmp_path):
    """An exported file changed after the export: loading names it."""
    copy = tmp_path / "m"
    shutil.copytree(pretrained, copy)
    target = copy / "embedding_model.ckpt"
    data = bytearray(target.read_bytes())
    data[-5000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match="embedding_model.ckpt"):
        SpeakerVerifier.from_hparams(copy)


def test_non_finite_weights_are_refused(run, tmp_path, capsys):
    """NaN weights that still match their checksum (saved so by a diverged
    run): export refuses, naming the file and tensor."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    checkpoint, meta = best_checkpoint(copy)
    path = checkpoint / "embedding_model.ckpt"
    state = torch.load(path)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, path)
    meta_path = checkpoint / "CKPT.yaml"
    text = meta_path.read_text()
    # Re-record the checksum, as the run would have.
    from unipool_lobes.training.checkpoints import file_record

    record = file_record(path)
    old = meta["checksums"]["embedding_model.ckpt"]
    text = text.replace(old["sha256"], record["sha256"]).replace(
        f"bytes: {old['bytes']}", f"bytes: {record['bytes']}"
    )
    meta_path.write_text(text)
    line = _error(["export", str(copy), str(tmp_path / "m")], capsys)
    assert (
        str(path) in line and f"non-finite values (NaN or inf) in {key}" in line
    )


# ------------------------------------------------------------------ verify
def test_nan_samples_and_a_nan_threshold_are_refused(
    pretrained, wavs, tmp_path, capsys
):
    """A file with NaN samples is refused by name (before: 'score: nan',
    'different speakers', exit 0); --threshold nan is refused."""
    signal, rate = soundfile.read(wavs[0], dtype="float32")
    signal[100] = np.nan
    poisoned = tmp_path / "nan.wav"
    soundfile.write(poisoned, signal, rate, subtype="FLOAT")
    model = ["--model", str(pretrained)]
    line = _error(["verify", str(poisoned), wavs[1], *model], capsys)
    assert str(poisoned) in line and "NaN or infinite samples" in line
    with pytest.raises(SystemExit) as error:
        main(["verify", wavs[0], wavs[1], *model, "--threshold", "nan"])
    assert error.value.code == 2
    assert "not a finite number" in capsys.readouterr().err
    verifier = SpeakerVerifier.from_hparams(pretrained)
    wav = torch.tensor(signal)
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        verifier.encode_batch(wav)


# ------------------------------------------------------------------- lists
def test_file_lists_hold_paths_with_spaces_and_a_bom(wavs, tmp_path):
    """A path with spaces is one path; 'id<TAB>path' gives an id; a UTF-8
    BOM is ignored; 'id path' with a space is an error telling to use a tab
    (before: the path was split at the space)."""
    spaced = tmp_path / "my recordings" / "a b.wav"
    spaced.parent.mkdir()
    shutil.copyfile(wavs[0], spaced)
    listing = tmp_path / "files.txt"
    listing.write_text(f"\ufeff{spaced}\nsecond\t{wavs[1]}\n", encoding="utf-8")
    ids, paths = read_file_list(listing)
    assert ids == ["a b", "second"] and paths[0] == str(spaced)
    listing.write_text(f"second {wavs[1]}\n")
    with pytest.raises(
        ValueError, match="separate it from the path with a tab"
    ):
        read_file_list(listing)


def test_trial_lists_and_manifests_with_a_bom(run, pretrained, tmp_path):
    """Trial list and manifest saved with a UTF-8 BOM score as without
    (before: a confusing header error)."""
    trials = tmp_path / "trials.csv"
    manifest = tmp_path / "test.csv"
    for source, target in (
        (run / "data" / "test_trials.csv", trials),
        (run / "data" / "test.csv", manifest),
    ):
        target.write_text("\ufeff" + source.read_text(), encoding="utf-8")
    options = ("--no-plots", "--no-progress", "--out")
    out, plain = tmp_path / "scores", tmp_path / "plain"
    assert main(_score_argv(pretrained, trials, manifest, *options, out)) == 0
    original = (run / "data" / "test_trials.csv", run / "data" / "test.csv")
    assert main(_score_argv(pretrained, *original, *options, plain)) == 0
    scores = (out / "scores.txt").read_text()
    assert scores == (plain / "scores.txt").read_text()


def test_repeated_or_contradictory_trials_are_refused(
    run, pretrained, tmp_path, capsys
):
    """The same trial twice, or a pair and its reverse with different
    labels, is an error naming both (before: accepted silently)."""
    source = (run / "data" / "test_trials.csv").read_text().splitlines()
    header, first = source[0], source[1]
    enrol, test, label = first.split(",")[:3]
    manifest = run / "data" / "test.csv"
    for extra, needle in (
        (first, "trials 1 and"),
        (
            ",".join([test, enrol, str(1 - int(label))] + first.split(",")[3:]),
            "but one says",
        ),
    ):
        trials = tmp_path / "trials.csv"
        trials.write_text("\n".join([header, *source[1:], extra]) + "\n")
        argv = _score_argv(pretrained, trials, manifest, "--no-progress")
        line = _error(argv, capsys)
        assert str(trials) in line and needle in line


def test_default_score_folders_of_two_corpora_differ(run, pretrained, tmp_path):
    """Two trial lists named test_trials.csv (two corpora) get two default
    result folders (before: the second overwrote the first)."""
    other = tmp_path / "other" / "test_trials.csv"
    other.parent.mkdir()
    shutil.copyfile(run / "data" / "test_trials.csv", other)
    manifest = run / "data" / "test.csv"
    for trials in (run / "data" / "test_trials.csv", other):
        argv = _score_argv(pretrained, trials, manifest, "--no-plots")
        assert main([*argv, "--no-progress"]) == 0
    folders = sorted((pretrained / "eval").glob("test_trials-*"))
    assert len(folders) == 2


# ------------------------------------------------------------------- embed
def test_embed_checks_the_output_before_any_work(
    pretrained, wavs, tmp_path, capsys
):
    """An output that cannot be written fails before the files are read
    (before: after all the embedding work)."""
    listing = tmp_path / "files.txt"
    listing.write_text(f"{tmp_path / 'missing.wav'}\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    line = _error(
        _embed_argv(pretrained, listing, str(blocker / "emb.npy")), capsys
    )
    assert "a file is in the way" in line


def test_killed_embed_leaves_no_partial_folder(
    pretrained, wavs, tmp_path, monkeypatch
):
    """Interrupted while writing a folder of embeddings: no --out folder
    (before: a partial folder that looked complete)."""
    listing = tmp_path / "files.txt"
    listing.write_text(f"a\t{wavs[0]}\nb\t{wavs[1]}\n")
    out = tmp_path / "emb"
    real_save = np.save
    calls = []

    def dying_save(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        main(_embed_argv(pretrained, listing, out))
    monkeypatch.undo()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(_embed_argv(pretrained, listing, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a.npy",
        "b.npy",
        "embed.json",
    ]


def test_long_files_go_alone_and_memory_errors_are_one_line(
    pretrained, wavs, tmp_path, monkeypatch, capsys
):
    """Batches hold at most --max-batch-seconds of padded audio (a longer
    file alone); an allocation failure is one line with the remedy (before:
    a fixed count per batch, and a traceback)."""
    verifier = SpeakerVerifier.from_hparams(pretrained)
    seen = []
    real_embed = verifier._embed

    def spying_embed(wavs_batch, lens, *args):
        seen.append(wavs_batch.shape[0])
        return real_embed(wavs_batch, lens, *args)

    monkeypatch.setattr(verifier, "_embed", spying_embed)
    paths = [wavs[0], wavs[1], wavs[0], wavs[1]]
    seconds = max(soundfile.info(p).duration for p in wavs)
    bounded = verifier.encode_files(paths, 16, False, max_batch_seconds=seconds)
    assert seen == [1, 1, 1, 1]
    seen.clear()
    together = verifier.encode_files(paths, 16, False)
    assert seen == [4]
    torch.testing.assert_close(bounded, together, atol=1e-5, rtol=1e-5)

    def no_memory(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 47244640256 bytes."
        )

    monkeypatch.setattr(SpeakerVerifier, "_embed", no_memory)
    listing = tmp_path / "files.txt"
    listing.write_text(f"{wavs[0]}\n")
    line = _error(
        _embed_argv(pretrained, listing, str(tmp_path / "e.npy")), capsys
    )
    assert "out of memory" in line and "--max-batch-seconds" in line
    assert wavs[0] in line


# ------------------------------------------------------------ other errors
def test_set_up_errors_are_one_line(pretrained, wavs, tmp_path, capsys):
    """A missing GPU, a model yaml naming no importable class or not yaml
    at all, and a batch size of 0 are one-line errors with exit 2 (before:
    tracebacks with exit 1, or a check after loading the model)."""
    model = ["--model", str(pretrained)]
    if not torch.cuda.is_available():
        line = _error(["verify", *wavs, *model, "--device", "cuda"], capsys)
        assert "--device cuda: this machine has no GPU" in line
    broken = tmp_path / "broken"
    shutil.copytree(pretrained, broken)
    (broken / "hyperparams.yaml").write_text("pretrainer: !new:no.such.Cls\n")
    line = _error(["verify", *wavs, "--model", str(broken)], capsys)
    assert "no.such.Cls" in line
    (broken / "hyperparams.yaml").write_text("modules: [\n")
    line = _error(["verify", *wavs, "--model", str(broken)], capsys)
    assert "hyperparams.yaml" in line
    with pytest.raises(SystemExit) as error:
        main(["verify", *wavs, *model, "--batch-size", "0"])
    assert error.value.code == 2
    assert "'0' is not at least 1" in capsys.readouterr().err


def test_export_and_embed_refuse_a_target_in_use(
    run, pretrained, wavs, tmp_path, capsys
):
    """While another process writes the same export or embedding target,
    a second is refused at once naming it."""
    listing = tmp_path / "files.txt"
    listing.write_text(f"{wavs[0]}\n")
    for target, argv in (
        (tmp_path / "m", ["export", str(run), str(tmp_path / "m")]),
        (
            tmp_path / "e.npy",
            _embed_argv(pretrained, listing, tmp_path / "e.npy"),
        ),
    ):
        with processes.holding_lock(target, "export", tmp_path) as holder:
            line = _error(argv, capsys)
        assert f"pid {holder.pid}" in line and "refused" in line
        assert not target.exists()


def test_embeddings_on_a_full_disk(pretrained, wavs, tmp_path, tmpfs, capsys):
    """ENOSPC writing embeddings (.npy or a folder): one line naming the
    file and the full disk; an earlier .npy stays intact, no partial
    folder is left."""
    disk = tmpfs.mount("1m")
    listing = tmp_path / "files.txt"
    listing.write_text(f"{wavs[0]}\n{wavs[1]}\n")
    npy = disk / "emb.npy"
    assert main(_embed_argv(pretrained, listing, npy)) == 0
    before = npy.read_bytes()
    fill_disk(disk, leave_bytes=0)
    line = _error(_embed_argv(pretrained, listing, npy), capsys)
    assert "the disk is full" in line and str(disk) in line
    assert npy.read_bytes() == before
    line = _error(_embed_argv(pretrained, listing, disk / "emb"), capsys)
    assert "the disk is full" in line
    assert not (disk / "emb").exists()
    assert sorted(p.name for p in disk.iterdir()) == [
        "emb.npy",
        "emb_ids.txt",
        "filler.bin",
    ]
