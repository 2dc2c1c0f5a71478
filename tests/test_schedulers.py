"""The tri-stage learning-rate schedule of the FinetuneWV2 recipe."""

import math

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from unipool_lobes.training.schedulers import (
    TriStageLR,
    WarmupCosineLR,
    tri_stage_lr,
)


def _optimizer(*peak_lrs):
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr}
        for lr in peak_lrs
    ]
    return torch.optim.Adam(groups)


def _run(schedule, optimizer, steps):
    """Learning rates of the first group before each of ``steps`` steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


def test_stages_of_the_paper_schedule():
    """10% linear warm-up, 40% constant, 50% exponential decay."""
    optimizer = _optimizer(5e-5)
    schedule = TriStageLR(optimizer, total_steps=1000)
    lrs = _run(schedule, optimizer, 1001)
    assert (schedule.warmup_steps, schedule.constant_steps) == (100, 400)
    assert schedule.decay_steps == 500
    assert lrs[0] == pytest.approx(5e-6)
    assert lrs[50] == pytest.approx(5e-6 + 0.5 * (5e-5 - 5e-6))
    assert all(lr == pytest.approx(5e-5) for lr in lrs[100:501])
    # Exponential: the log learning rate falls linearly over the decay.
    assert lrs[750] == pytest.approx(math.sqrt(5e-5 * 5e-6))
    assert lrs[1000] == pytest.approx(5e-6)
    assert all(a >= b for a, b in zip(lrs[500:], lrs[501:], strict=False))
    assert all(a <= b for a, b in zip(lrs[:100], lrs[1:101], strict=False))


def test_every_group_peaks_at_its_own_rate():
    """Each parameter group goes from initial_lr to its lr to final_lr."""
    optimizer = _optimizer(1e-3, 1e-4)
    schedule = TriStageLR(optimizer, 100, initial_lr=1e-6, final_lr=1e-7)
    for _ in range(30):
        optimizer.step()
        schedule.step()
    assert schedule.get_last_lr() == pytest.approx([1e-3, 1e-4])
    for _ in range(70):
        optimizer.step()
        schedule.step()
    assert schedule.get_last_lr() == pytest.approx([1e-7, 1e-7])


def test_rounding_keeps_the_decay_ending_at_total_steps():
    """Stage lengths that do not divide evenly still end at total_steps."""
    schedule = TriStageLR(_optimizer(1.0), total_steps=859, final_lr=0.01)
    total = schedule.warmup_steps + schedule.constant_steps
    assert total + schedule.decay_steps == 859
    assert tri_stage_lr(859, 1.0, 85, 343, 431, 0.1, 0.01) == 0.01


def test_resumes_from_a_speechbrain_checkpoint(tmp_path):
    """Saved mid-run with SpeechBrain's Checkpointer, it continues the curve."""
    optimizer = _optimizer(5e-5)
    schedule = TriStageLR(optimizer, total_steps=200)
    _run(schedule, optimizer, 120)
    recoverables = {"optimizer": optimizer, "lr_scheduler": schedule}
    Checkpointer(tmp_path, recoverables).save_checkpoint()
    expected = _run(schedule, optimizer, 50)

    resumed_optimizer = _optimizer(5e-5)
    resumed = TriStageLR(resumed_optimizer, total_steps=200)
    recoverables = {"optimizer": resumed_optimizer, "lr_scheduler": resumed}
    Checkpointer(tmp_path, recoverables).recover_if_possible()
    assert resumed.last_epoch == 120
    assert _run(resumed, resumed_optimizer, 50) == pytest.approx(expected)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"warmup_ratio": 0.2}, "must be 1"),
        ({"decay_ratio": 1.5, "constant_ratio": -0.9}, r"in \[0, 1\]"),
        ({"final_lr": 0.0}, "positive"),
        ({"total_steps": 0}, "total_steps"),
    ],
)
def test_bad_options(options, message):
    """Bad stage ratios, learning rates or lengths are clear errors."""
    arguments = {"total_steps": 10, **options}
    with pytest.raises(ValueError, match=message):
        TriStageLR(_optimizer(1.0), **arguments)


def _authors_cycle(step, max_lr, min_lr, warmup, cycle):
    """The LAP authors' one-cycle rule (spec/lap_pipeline.md §6), written
    out step by step: linear from min_lr, then a half cosine."""
    if step < warmup:
        return (max_lr - min_lr) * step / warmup + min_lr
    angle = math.pi * (step - warmup) / (cycle - warmup)
    return min_lr + (max_lr - min_lr) * (1 + math.cos(angle)) / 2


def test_warmup_cosine_is_the_authors_cycle_on_every_group(tmp_path):
    """Phase 1's curve at a tenth of its size: min_lr at step 0, max_lr at
    the end of the 10 % warm-up, the cosine after, the same lr on both
    parameter groups (whatever their own lr), and a resumed schedule
    continues it. OneCycleLR (the paper yamls' schedule) starts at
    max_lr / 25 and fails here."""
    weights = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.Adam(
        [{"params": weights[:1], "lr": 0.5}, {"params": weights[1:]}], lr=0.1
    )
    schedule = WarmupCosineLR(optimizer, 1e-3, 1e-5, cycle_steps=8532)
    assert schedule.warmup_steps == 853
    seen = []
    for step in range(8532):
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert lrs[0] == lrs[1]
        seen.append(lrs[0])
        optimizer.step()
        schedule.step()
        if step == 4000:
            Checkpointer(tmp_path, {"s": schedule}).save_checkpoint()
    expected = [_authors_cycle(s, 1e-3, 1e-5, 853, 8532) for s in range(8532)]
    assert seen == pytest.approx(expected, rel=1e-9)
    assert seen[0] == pytest.approx(1e-5) and seen[853] == pytest.approx(1e-3)

    resumed = WarmupCosineLR(_optimizer(1.0), 1e-3, 1e-5, cycle_steps=8532)
    Checkpointer(tmp_path, {"s": resumed}).recover_if_possible()
    assert resumed.get_last_lr()[0] == pytest.approx(seen[4001])


def test_warmup_cosine_with_equal_ends_is_constant():
    """Phase 3: max_lr = min_lr gives one learning rate throughout."""
    optimizer = _optimizer(1.0)
    schedule = WarmupCosineLR(optimizer, 5e-6, 5e-6, cycle_steps=20)
    assert _run(schedule, optimizer, 20) == pytest.approx([5e-6] * 20)
    with pytest.raises(ValueError, match="must not exceed"):
        WarmupCosineLR(_optimizer(1.0), 1e-5, 1e-3, cycle_steps=20)
