"""The recipe under torchrun DDP (2 CPU processes, gloo): same results as one
process, and the same results whatever the file system makes one rank wait
for, whichever rank is killed.

``batch_size`` is the global batch: each of two processes takes half of it
and SpeechBrain averages the gradients, so two processes with
``batch_size=8`` follow the same training as one process with
``batch_size=8`` when nothing random differs between them: whole utterances
(no random crops) and no dropout. Validation and test
embeddings are computed on shards and gathered, and only rank 0 writes.

The fault-injection runs make one rank wait before every file write and
rename (``tests/fault_injection/sitecustomize.py``): before the checkpointer
took its decisions on rank 0 alone, a rank that listed the checkpoint folder
before rank 0's rename decided on other deletions, skipped a collective,
and the run hung at the first checkpoint rotation.
"""

import json
import os
import pathlib
import signal
import sys
import time

import pytest
import torch

from data_prep.mini_corpus import write_mini_vctk
from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.training.checkpoints import complete_checkpoints

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from processes import Started, descendants, environment, python, run, torchrun  # noqa: E402

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
sys.path.insert(0, str(RECIPE))
from demo import demo_overrides  # noqa: E402

pytestmark = pytest.mark.slow

# Collectives give up after this long: a mismatch fails in seconds.
DDP_TIMEOUT = "--ddp_timeout=60"
RUN_TIMEOUT = 240
STEPS, INTERVAL = 8, 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A mini corpus, a tiny model and its prepared folder, made once."""
    root = tmp_path_factory.mktemp("ddp")
    corpus = write_mini_vctk(
        str(root / "corpus"),
        n_speakers=12,
        utterances_per_speaker=4,
        duration_range=(0.6, 1.2),
        seed=2,
    )
    model = write_local_model(str(root / "model"), size="tiny", seed=2)
    return {"corpus": corpus, "model": model, "prep": root / "prep"}


def _train(inputs, out, batch_size, **extra):
    return [
        "train.py",
        "hparams/unipool_vctk.yaml",
        *demo_overrides(
            inputs["corpus"],
            inputs["model"],
            str(out),
            extra.pop("steps", 4),
            extra.pop("interval", 2),
            batch_size=batch_size,
            prep_folder=inputs["prep"],
            crop_seconds=30.0,
            crop_padding="pad",
            # The authors' head start (weights 3x smaller) leaves more
            # near-zero gradients, whose Adam steps (about lr each way)
            # flip with float rounding between one and two processes; the
            # max-pool batch norms then follow another frame. SpeechBrain's
            # start keeps the weight comparison below meaningful.
            classifier_init="speechbrain",
            dropout=0.0,
            seed=3,
            out_n_neurons=8,
            **extra,
        ),
    ]


def _ddp(inputs, out, **extra):
    """A 2-process run with checkpoints at every step (many rotations)."""
    settings = {
        "steps": STEPS,
        "interval": INTERVAL,
        "ckpt_interval_steps": 1,
        "ckpt_interval_minutes": 0,
        **extra,
    }
    return [
        *torchrun(2),
        *_train(inputs, out, 8, **settings),
        "--distributed_backend=gloo",
        DDP_TIMEOUT,
    ]


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """The unperturbed 2-process run every fault-injected run must match."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(_ddp(inputs, out), RUN_TIMEOUT, check=True, cwd=RECIPE)
    return out


def _best_checkpoint(out):
    (ckpt,) = (out / "save").glob("CKPT+*")
    return torch.load(ckpt / "embedding_model.ckpt", map_location="cpu")


def _read_scores(path):
    scores = {}
    for line in path.read_text().splitlines():
        enrol, test, _, score = line.split()
        scores[enrol, test] = float(score)
    return scores


def _assert_same_results(out, reference, tolerance=1e-6):
    """Same test scores and metrics as the reference run."""
    results = json.loads((out / "results.json").read_text())
    expected = json.loads((reference / "results.json").read_text())
    assert results["n_trials"] == expected["n_trials"]
    assert results["EER"] == pytest.approx(expected["EER"], abs=tolerance)
    scores = _read_scores(out / "scores.txt")
    expected_scores = _read_scores(reference / "scores.txt")
    assert scores.keys() == expected_scores.keys()
    gap = max(abs(scores[k] - v) for k, v in expected_scores.items())
    assert gap <= tolerance, f"scores differ by up to {gap}"
    log = (out / "train_log.txt").read_text()
    for step in range(INTERVAL, STEPS + 1, INTERVAL):
        assert log.count(f"step: {step},") == 1, log


def test_ddp_matches_single_process(inputs, tmp_path):
    """Two gloo processes give the weights and EER of one process."""
    single = tmp_path / "single"
    run(
        python(*_train(inputs, single, 8)),
        RUN_TIMEOUT,
        check=True,
        cwd=RECIPE,
    )
    ddp = tmp_path / "ddp"
    run(
        [
            *torchrun(2),
            *_train(inputs, ddp, 8),
            "--distributed_backend=gloo",
            DDP_TIMEOUT,
        ],
        RUN_TIMEOUT,
        check=True,
        cwd=RECIPE,
    )

    # Gradients agree to float precision, but Adam's first steps move each
    # weight by about lr whatever the gradient's size, so elements whose
    # gradient is nearly zero (e.g. biases before batch norm) may step in
    # opposite directions: a few lr (~1e-3) is the expected weight gap.
    single_state = _best_checkpoint(single)
    ddp_state = _best_checkpoint(ddp)
    assert single_state.keys() == ddp_state.keys()
    for key, value in single_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(
                ddp_state[key], value, atol=1e-2, rtol=1e-2, msg=key
            )

    single_results = json.loads((single / "results.json").read_text())
    ddp_results = json.loads((ddp / "results.json").read_text())
    assert ddp_results["n_trials"] == single_results["n_trials"]
    assert abs(ddp_results["EER"] - single_results["EER"]) < 0.05
    single_scores = _read_scores(single / "scores.txt")
    ddp_scores = _read_scores(ddp / "scores.txt")
    assert single_scores.keys() == ddp_scores.keys()
    gap = max(abs(ddp_scores[k] - v) for k, v in single_scores.items())
    assert gap < 1e-2, f"scores differ by up to {gap}"
    # Only rank 0 wrote: one checkpoint, one results file.
    assert len(list((ddp / "save").glob("CKPT+*"))) == 1
    # The global batch is split (before: each process took 8).
    assert "Batch of 8 utterances per optimizer step: 4 per process over 2" in (
        (ddp / "log.txt").read_text()
    )
    assert "8 per process over 1 process" in (single / "log.txt").read_text()


def test_a_global_batch_that_does_not_divide_is_refused(inputs, tmp_path):
    """7 utterances cannot be split between 2 processes: one line, before
    any training (before: each process took 7)."""
    out = tmp_path / "run"
    done = run(
        [
            *torchrun(2),
            *_train(inputs, out, 7),
            "--distributed_backend=gloo",
            DDP_TIMEOUT,
        ],
        RUN_TIMEOUT,
        cwd=RECIPE,
    )
    assert done.returncode != 0
    assert (
        "error: batch_size=7 is the global batch and does not divide "
        "between 2 processes" in done.stdout
    ), done.stdout[-3000:]
    assert not (out / "save").exists() or not any((out / "save").iterdir())


@pytest.mark.parametrize("slow_rank", [0, 1])
def test_a_slow_rank_changes_nothing(inputs, reference, tmp_path, slow_rank):
    """With one rank waiting 0.1 s before each write and rename, the run
    rotates its checkpoints at every step and ends as the reference did
    (before: rank 0 slow hung at the first rotation)."""
    out = tmp_path / "run"
    run(
        _ddp(inputs, out),
        RUN_TIMEOUT,
        check=True,
        cwd=RECIPE,
        env=environment(slow_rank=slow_rank, slow_seconds=0.1, slow_under=out),
    )
    _assert_same_results(out, reference)
    assert len(complete_checkpoints(out / "save")) >= 1
    leftovers = [p.name for p in (out / "save").iterdir() if p.is_dir()]
    assert all(name.startswith("CKPT+") for name in leftovers), leftovers


def _rank_pid(launcher, rank):
    """The pid of the torchrun worker of ``rank``, once it runs."""
    for pid in descendants(launcher.pid):
        try:
            environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ.split(b"\0"):
            return pid
    return None


def _newest_step(save):
    checkpoints = complete_checkpoints(save)
    if not checkpoints:
        return None
    newest = max(checkpoints, key=lambda c: c.meta["unixtime"])
    return newest.meta.get("step")


def test_killed_rank_resumes_without_repeating_a_step(
    inputs, reference, tmp_path
):
    """SIGKILL of rank 1 mid-run stops the run; the same command resumes at
    the step of the last complete checkpoint, trains exactly the steps
    left, and ends with the reference's scores."""
    out = tmp_path / "run"
    command = _ddp(inputs, out)
    with Started(command, RUN_TIMEOUT, cwd=RECIPE, log=tmp_path / "a.log") as a:
        killed = None
        while killed is None:
            step = _newest_step(out / "save")
            if step is not None and step >= INTERVAL + 1:
                killed = _rank_pid(a, 1)
                os.kill(killed, signal.SIGKILL)
            assert a.process.poll() is None, a.output()[-3000:]
            assert a.remaining() > 0, "no checkpoint after the first interval"
            time.sleep(0.05)
        first = a.finish()
    assert first.returncode != 0
    assert not (out / "results.json").exists()
    resume_step = _newest_step(out / "save")
    assert INTERVAL < resume_step < STEPS

    second = run(command, RUN_TIMEOUT, check=True, cwd=RECIPE)
    assert f"Resuming at optimizer step {resume_step} of {STEPS}" in (
        second.stdout
    ), second.stdout[-3000:]
    trained = STEPS - resume_step
    assert (
        f"Training ended at optimizer step {STEPS} of {STEPS} ({trained} "
        f"steps in this run, from step {resume_step})" in second.stdout
    )
    assert "taking over the lock" in second.stdout
    _assert_same_results(out, reference)


def test_a_stuck_collective_fails_in_seconds(inputs, tmp_path):
    """Rank 0 stuck for 120 s at its first write into the run folder (its
    lock, while rank 1 waits for the outcome): rank 1 gives up at the
    collective timeout with an error naming the collective, and torchrun
    stops the run (before: the 2-hour timeout, so CI hung)."""
    started = time.monotonic()
    out = tmp_path / "run"
    done = run(
        [*_ddp(inputs, out)[:-1], "--ddp_timeout=5"],
        90,
        cwd=RECIPE,
        env=environment(slow_rank=0, slow_seconds=120, slow_under=out),
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 80
    assert "Timed out" in done.stdout, done.stdout[-3000:]
    assert "broadcast" in done.stdout
