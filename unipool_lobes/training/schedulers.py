"""Learning-rate schedules that the recipes step once per optimizer step.

:class:`TriStageLR` is the tri-stage schedule of the FinetuneWV2 baseline
(Vaessen & van Leeuwen 2022, "Fine-tuning wav2vec2 for speaker
recognition"): a linear warm-up, a constant stage, then an exponential
decay. :class:`WarmupCosineLR` is the LAP authors' one-cycle
``CosineAnnealingWarmupRestarts`` (``spec/lap_pipeline.md`` §6): a linear
warm-up from ``min_lr`` to ``max_lr``, then a half cosine back to
``min_lr``. Each is a ``torch.optim.lr_scheduler.LRScheduler``, so the training
script builds it from the yaml (``lr_scheduler: !name:...``), steps it
after each optimizer step and checkpoints it with its ``state_dict``.

Authors
 * unipool-sv developers 2026
"""

import math

from torch.optim.lr_scheduler import LRScheduler

__all__ = ["TriStageLR", "WarmupCosineLR", "tri_stage_lr", "warmup_cosine_lr"]


def tri_stage_lr(
    step,
    peak_lr,
    warmup_steps,
    constant_steps,
    decay_steps,
    initial_lr,
    final_lr,
):
    """The learning rate of the tri-stage schedule at one step.

    ``initial_lr`` at step 0, rising linearly to ``peak_lr`` at step
    ``warmup_steps``; ``peak_lr`` until ``warmup_steps + constant_steps``;
    then decaying exponentially (linearly in log space) to ``final_lr``
    over ``decay_steps`` steps; ``final_lr`` after that.

    Arguments
    ---------
    step : int
        Optimizer steps taken so far.
    peak_lr : float
        Learning rate of the constant stage.
    warmup_steps : int
        Length of the warm-up.
    constant_steps : int
        Length of the constant stage.
    decay_steps : int
        Length of the decay.
    initial_lr : float
        Learning rate at step 0 (positive).
    final_lr : float
        Learning rate at the end of the decay (positive).

    Returns
    -------
    float
        The learning rate.

    Example
    -------
    >>> [round(tri_stage_lr(s, 1.0, 2, 1, 2, 0.1, 0.01), 4) for s in range(7)]
    [0.1, 0.55, 1.0, 1.0, 0.1, 0.01, 0.01]
    """
    if step < warmup_steps:
        return initial_lr + (peak_lr - initial_lr) * step / warmup_steps
    decay_start = warmup_steps + constant_steps
    if step < decay_start:
        return peak_lr
    if step >= decay_start + decay_steps:
        return final_lr if decay_steps else peak_lr
    progress = (step - decay_start) / decay_steps
    return peak_lr * math.exp(progress * math.log(final_lr / peak_lr))


class TriStageLR(LRScheduler):
    """Tri-stage learning rate: linear warm-up, constant, exponential decay.

    The stages take ``floor(total_steps * warmup_ratio)``,
    ``floor(total_steps * constant_ratio)`` steps and the rest of
    ``total_steps``, so that the decay ends exactly at ``total_steps``.
    Each parameter group goes from ``initial_lr`` to its own learning rate
    (the peak, as set in the optimizer) and down to ``final_lr``. The
    FinetuneWV2 defaults: 10% / 40% / 50%, initial and final 5e-6, peak
    5e-5 (AAM-softmax variant).

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        The optimizer; each group's ``lr`` is its peak learning rate.
    total_steps : int
        Optimizer steps of the whole run. The training script stops
        stepping the schedule after ``total_steps`` (it reads this
        attribute).
    warmup_ratio : float
        Fraction of ``total_steps`` in the linear warm-up.
    constant_ratio : float
        Fraction of ``total_steps`` at the peak learning rate.
    decay_ratio : float
        Fraction of ``total_steps`` in the exponential decay; the three
        ratios must add up to 1.
    initial_lr : float
        Learning rate at step 0.
    final_lr : float
        Learning rate at the end of the decay.
    last_epoch : int
        The index of the last step (-1 to start), as in torch.

    Raises
    ------
    ValueError
        For ratios outside [0, 1] or not adding up to 1, a non-positive
        ``total_steps``, or a non-positive initial or final learning rate.

    Example
    -------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.zeros(1))
    >>> optimizer = torch.optim.Adam([weight], lr=5e-5)
    >>> schedule = TriStageLR(optimizer, total_steps=10)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    ...     optimizer.step()
    ...     schedule.step()
    >>> [f"{lr:.0e}" for lr in lrs]  # doctest: +NORMALIZE_WHITESPACE
    ['5e-06', '5e-05', '5e-05', '5e-05', '5e-05', '5e-05', '3e-05',
     '2e-05', '1e-05', '8e-06']
    >>> f"{schedule.get_last_lr()[0]:.0e}"
    '5e-06'
    """

    def __init__(
        self,
        optimizer,
        total_steps,
        warmup_ratio=0.1,
        constant_ratio=0.4,
        decay_ratio=0.5,
        initial_lr=5e-6,
        final_lr=5e-6,
        last_epoch=-1,
    ):
        ratios = {
            "warmup_ratio": warmup_ratio,
            "constant_ratio": constant_ratio,
            "decay_ratio": decay_ratio,
        }
        for name, ratio in ratios.items():
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {ratio}")
        if abs(sum(ratios.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"warmup_ratio + constant_ratio + decay_ratio must be 1, got "
                f"{warmup_ratio} + {constant_ratio} + {decay_ratio}"
            )
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if initial_lr <= 0 or final_lr <= 0:
            raise ValueError(
                "initial_lr and final_lr must be positive (the decay is "
                f"exponential), got {initial_lr} and {final_lr}"
            )
        self.total_steps = int(total_steps)
        self.warmup_steps = math.floor(self.total_steps * warmup_ratio)
        self.constant_steps = math.floor(self.total_steps * constant_ratio)
        self.decay_steps = (
            self.total_steps - self.warmup_steps - self.constant_steps
        )
        self.initial_lr = initial_lr
        self.final_lr = final_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """Learning rates of the parameter groups at the current step.

        Returns
        -------
        list of float
            One learning rate per parameter group.
        """
        return [
            tri_stage_lr(
                self.last_epoch,
                peak_lr,
                self.warmup_steps,
                self.constant_steps,
                self.decay_steps,
                self.initial_lr,
                self.final_lr,
            )
            for peak_lr in self.base_lrs
        ]


def warmup_cosine_lr(step, max_lr, min_lr, warmup_steps, cycle_steps):
    """The learning rate of the warm-up + cosine cycle at one step.

    ``min_lr`` at step 0, rising linearly to ``max_lr`` at
    ``warmup_steps``, then along a half cosine to ``min_lr`` at
    ``cycle_steps``; ``min_lr`` after that (one cycle, no restart).

    Arguments
    ---------
    step : int
        Optimizer steps taken so far.
    max_lr : float
        The peak learning rate.
    min_lr : float
        The learning rate at both ends of the cycle.
    warmup_steps : int
        Length of the warm-up (less than ``cycle_steps``).
    cycle_steps : int
        Length of the whole cycle.

    Returns
    -------
    float
        The learning rate.

    Example
    -------
    >>> [round(warmup_cosine_lr(s, 1.0, 0.0, 2, 6), 3) for s in range(8)]
    [0.0, 0.5, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    """
    if step < warmup_steps:
        return min_lr + (max_lr - min_lr) * step / warmup_steps
    if step >= cycle_steps:
        return min_lr
    progress = (step - warmup_steps) / (cycle_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from ``min_lr`` to ``max_lr``, then cosine to ``min_lr``.

    The LAP authors' schedule with one cycle (their ``n_cycle: 1``, with
    which ``gamma`` and ``cycle_mult`` never act): the warm-up takes
    ``int(cycle_steps * warmup_ratio)`` steps. Every parameter group gets
    the same learning rate, as theirs (the optimizer's own ``lr`` is
    overwritten at once).

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        The optimizer.
    max_lr : float
        The peak learning rate.
    min_lr : float
        The learning rate at the start and the end; equal to ``max_lr``
        gives a constant learning rate (their phase 3).
    cycle_steps : int
        Optimizer steps of the cycle. The training script stops stepping
        the schedule after ``total_steps`` (an alias it reads).
    warmup_ratio : float
        Fraction of the cycle in the warm-up, in [0, 1).
    last_epoch : int
        The index of the last step (-1 to start), as in torch.

    Raises
    ------
    ValueError
        For a non-positive ``cycle_steps``, a ratio outside [0, 1) or
        ``min_lr > max_lr``.

    Example
    -------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.zeros(1))
    >>> optimizer = torch.optim.Adam([weight], lr=0.5)
    >>> schedule = WarmupCosineLR(optimizer, 1e-3, 1e-5, cycle_steps=10)
    >>> lrs = []
    >>> for _ in range(10):
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    ...     optimizer.step()
    ...     schedule.step()
    >>> [f"{lr:.1e}" for lr in lrs]  # doctest: +NORMALIZE_WHITESPACE
    ['1.0e-05', '1.0e-03', '9.7e-04', '8.8e-04', '7.5e-04', '5.9e-04',
     '4.2e-04', '2.6e-04', '1.3e-04', '4.0e-05']
    """

    def __init__(
        self,
        optimizer,
        max_lr,
        min_lr,
        cycle_steps,
        warmup_ratio=0.1,
        last_epoch=-1,
    ):
        if int(cycle_steps) < 1:
            raise ValueError(f"cycle_steps must be >= 1, got {cycle_steps}")
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(
                f"warmup_ratio must be in [0, 1), got {warmup_ratio}"
            )
        if min_lr > max_lr:
            raise ValueError(
                f"min_lr ({min_lr}) must not exceed max_lr ({max_lr})"
            )
        self.max_lr = float(max_lr)
        self.min_lr = float(min_lr)
        self.total_steps = int(cycle_steps)
        self.warmup_steps = int(self.total_steps * warmup_ratio)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """Learning rates of the parameter groups at the current step.

        Returns
        -------
        list of float
            One (the same) learning rate per parameter group.
        """
        lr = warmup_cosine_lr(
            self.last_epoch,
            self.max_lr,
            self.min_lr,
            self.warmup_steps,
            self.total_steps,
        )
        return [lr for _ in self.optimizer.param_groups]
