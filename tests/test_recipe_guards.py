"""The training script refuses what would lose work or do less than asked.

Each test runs the VCTK recipe's ``train.py`` on a mini corpus with a tiny
model. Before these guards: ``--valid_interval_steps=5
--number_of_steps=3`` trained no step, 5 steps at interval 2 trained 4, a
finished run re-run with more steps continued at the last learning rate
(2e-8) of the old schedule, two trainings in one folder crashed or mixed
their checkpoints, ``--batch_size=abc`` failed deep in the data loader, a
``$`` in a path was a ``KeyError``, and a full disk while saving a
checkpoint was ``RuntimeError ... unexpected pos``.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import sys
import time

import processes
import pytest
from filesystems import fill_disk

from data_prep.mini_corpus import write_mini_vctk
from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.training.checkpoints import (
    complete_checkpoints,
    verify_checkpoint,
)

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
sys.path.insert(0, str(RECIPE))
from demo import demo_overrides  # noqa: E402

pytestmark = pytest.mark.slow
TIMEOUT = 240


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A mini corpus and a tiny model; the first run prepares the data."""
    root = tmp_path_factory.mktemp("guards")
    corpus = write_mini_vctk(
        str(root / "corpus"),
        n_speakers=12,
        utterances_per_speaker=4,
        duration_range=(0.6, 1.0),
        seed=4,
    )
    model = write_local_model(str(root / "model"), size="tiny", seed=4)
    return {"corpus": corpus, "model": model, "prep": root / "prep"}


def _command(inputs, out, steps, interval, **extra):
    settings = {
        "batch_size": 4,
        "crop_seconds": 1.0,
        "out_n_neurons": 8,
        "prep_folder": inputs["prep"],
        **extra,
    }
    return processes.python(
        "train.py",
        "hparams/unipool_vctk.yaml",
        *demo_overrides(
            inputs["corpus"],
            inputs["model"],
            str(out),
            steps,
            interval,
            **settings,
        ),
    )


def _validated_steps(out):
    log = (out / "train_log.txt").read_text()
    return [int(step) for step in re.findall(r"^step: (\d+),", log, re.M)]


def test_the_last_partial_interval_is_trained_and_validated(inputs, tmp_path):
    """5 steps at interval 2 validate at 2, 4 and 5; 3 steps at interval 5
    train 3 steps (before: 4 steps, and none). The second run's corpus,
    output and prepared folders hold a '$' and a space."""
    out = tmp_path / "run"
    processes.run(_command(inputs, out, 5, 2), TIMEOUT, check=True, cwd=RECIPE)
    assert _validated_steps(out) == [2, 4, 5]

    odd = tmp_path / "a $dir with space"
    corpus = odd / "VCTK $x"
    shutil.copytree(inputs["corpus"], corpus)
    out = odd / "run$1"
    done = processes.run(
        _command(
            {**inputs, "corpus": str(corpus)},
            out,
            3,
            5,
            prep_folder=odd / "prep$HOME",
        ),
        TIMEOUT,
        check=True,
        cwd=RECIPE,
    )
    assert _validated_steps(out) == [3]
    assert "Training ended at optimizer step 3 of 3" in done.stdout
    assert "$HOME" in (odd / "prep$HOME" / "train.csv").read_text()
    assert json.loads((out / "results.json").read_text())["n_trials"] > 0


def test_a_resumed_run_with_other_hyperparameters_is_refused(inputs, tmp_path):
    """Re-running a finished 2-step run with 6 steps is refused, naming the
    change; with --resume_with_changed_hparams it continues from step 2 on
    a schedule rebuilt for 6 steps (before: it continued at lr 2e-8)."""
    out = tmp_path / "run"
    processes.run(_command(inputs, out, 2, 2), TIMEOUT, check=True, cwd=RECIPE)
    results = (out / "results.json").read_text()
    refused = processes.run(_command(inputs, out, 6, 2), TIMEOUT, cwd=RECIPE)
    assert refused.returncode == 2, refused.stdout[-3000:]
    assert "number_of_steps: 2 -> 6" in refused.stdout
    assert "--resume_with_changed_hparams" in refused.stdout
    assert (out / "results.json").read_text() == results

    resumed = processes.run(
        [*_command(inputs, out, 6, 2), "--resume_with_changed_hparams"],
        TIMEOUT,
        check=True,
        cwd=RECIPE,
    )
    assert "Resuming at optimizer step 2 of 6" in resumed.stdout
    assert _validated_steps(out) == [2, 4, 6]
    log = (out / "train_log.txt").read_text()
    lr_at_4 = float(re.search(r"^step: 4, lr: ([0-9.e+-]+)", log, re.M)[1])
    assert lr_at_4 > 1e-5, log
    assert "number_of_steps: 6" in (out / "hyperparams.yaml").read_text()


def test_a_second_training_in_the_same_folder_is_refused(inputs, tmp_path):
    """While one training runs, a second into its folder exits at once with
    code 2, naming the first's pid and host."""
    out = tmp_path / "run"
    command = _command(inputs, out, 400, 200)
    with processes.Started(
        command, TIMEOUT, cwd=RECIPE, log=tmp_path / "first.log"
    ) as first:
        while not (out / ".unipool-sv.lock").is_file():
            assert first.process.poll() is None, first.output()[-3000:]
            assert first.remaining() > 0
            time.sleep(0.05)
        second = processes.run(command, TIMEOUT, cwd=RECIPE)
        assert first.process.poll() is None, "the first run was disturbed"
        os.kill(first.pid, signal.SIGKILL)
        first.finish()
    assert second.returncode == 2, second.stdout[-3000:]
    message = second.stdout.strip().splitlines()[-1]
    assert f"pid {first.pid} on host" in message and "training" in message


def test_an_override_of_the_wrong_type_is_named(inputs, tmp_path):
    """--batch_size=abc: one line naming the key, exit 2, nothing done."""
    out = tmp_path / "run"
    done = processes.run(
        _command(inputs, out, 2, 2, batch_size="abc"), TIMEOUT, cwd=RECIPE
    )
    assert done.returncode == 2, done.stdout[-3000:]
    assert "--batch_size=abc: batch_size must be an integer" in done.stdout
    assert not out.exists()


def test_a_read_only_output_folder_is_refused_before_any_work(
    inputs, tmp_path, tmpfs
):
    """Output folder on a read-only file system: exit 2 naming it, and no
    preparation started."""
    read_only = tmpfs.mount("1m")
    tmpfs.read_only(read_only)
    prep = tmp_path / "fresh_prep"
    done = processes.run(
        _command(inputs, read_only / "run", 2, 2, prep_folder=prep),
        TIMEOUT,
        cwd=RECIPE,
    )
    assert done.returncode == 2, done.stdout[-3000:]
    assert "read-only file system" in done.stdout
    assert str(read_only / "run") in done.stdout
    assert not prep.exists()


def test_a_full_disk_while_saving_keeps_the_last_checkpoint(inputs, tmpfs):
    """The disk fills up before the second checkpoint: exit 2 with the file
    and 'the disk is full', the first checkpoint complete and verified."""
    disk = tmpfs.mount("96m")
    out = disk / "run"
    command = _command(inputs, out, 60, 2, ckpt_interval_minutes=0)
    with processes.Started(
        command, TIMEOUT, cwd=RECIPE, log=disk.parent / "run.log"
    ) as run:
        while not complete_checkpoints(out / "save"):
            assert run.process.poll() is None, run.output()[-3000:]
            assert run.remaining() > 0
            time.sleep(0.01)
        fill_disk(disk, leave_bytes=256 * 1024)
        done = run.finish()
    assert done.returncode == 2, done.stdout[-3000:]
    message = done.stdout.strip().splitlines()[-1]
    assert "the disk is full" in message and str(out / "save") in message
    (kept,) = complete_checkpoints(out / "save")
    verify_checkpoint(kept)
    assert [p.name for p in (out / "save").glob("CKPT+*")] == [kept.path.name]


def test_killed_preparation_takes_its_workers_with_it(tmp_path):
    """SIGKILL of a preparation: its conversion workers end too (before:
    they went on converting, then slept holding their memory)."""
    corpus = write_mini_vctk(
        str(tmp_path / "corpus"),
        n_speakers=24,
        utterances_per_speaker=6,
        duration_range=(2.0, 3.0),
        seed=5,
    )
    script = (
        "import sys\n"
        "from data_prep.vctk import prepare_vctk\n"
        "prepare_vctk(sys.argv[1], sys.argv[2], split_source='generate',"
        " num_workers=2)\n"
    )
    with processes.Started(
        [sys.executable, "-c", script, corpus, tmp_path / "prep"],
        TIMEOUT,
        log=tmp_path / "prep.log",
    ) as preparation:
        workers = []
        while len(workers) < 2:
            workers = processes.descendants(preparation.pid)
            assert preparation.process.poll() is None, preparation.output()
            assert preparation.remaining() > 0
            time.sleep(0.01)
        os.kill(preparation.pid, signal.SIGKILL)
        preparation.finish()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived the preparation"
        time.sleep(0.05)


def _alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
