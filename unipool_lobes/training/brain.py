"""A SpeechBrain ``Brain`` with the training machinery every recipe needs.

SpeechBrain's ``Brain`` counts a non-finite loss but still steps the
optimizer on it, steps learning-rate schedules per epoch, rejects
``nn.SyncBatchNorm`` under CPU (gloo) DDP, and has no notion of a loss
whose margin follows the step. :class:`StepBrain` adds what the recipes of
this project share, whatever their model:

* non-finite batches are skipped on every process (the decision is
  shared), with the batch-norm statistics they changed restored, and a
  patience per validation interval;
* the learning-rate schedule (``hparams.lr_scheduler``, a function of the
  optimizer) steps after each optimizer step, is checkpointed, and is
  rebuilt and replayed for a run resumed with changed hyperparameters;
* an optional second parameter group for ``modules.classifier``
  (``classifier_weight_decay``);
* an optional ``margin_ramp``: the loss's margin set from the optimizer
  step before each forward pass;
* ``validate_after_step``: no validation (and no selectable checkpoint)
  before that step;
* CPU DDP with process-group batch norm
  (:class:`unipool_lobes.training.batch_norm.ProcessGroupBatchNorm`).

A recipe subclasses it with its forward pass, objectives and stage hooks
(see ``recipes/train_speaker_embeddings.py``).

Authors
 * unipool-sv developers 2026
"""

import logging
import warnings

import speechbrain as sb
import torch
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG
from speechbrain.utils.distributed import is_distributed_initialized
from speechbrain.utils.logger import get_logger
from torch.nn.parallel import DistributedDataParallel as DDP

from unipool_lobes.training.batch_norm import ProcessGroupBatchNorm

__all__ = ["StepBrain"]

logger = get_logger(__name__)


class StepBrain(sb.core.Brain):
    """``Brain`` with per-step schedules and non-finite-batch skipping.

    It reads SpeechBrain's run option ``nonfinite_patience`` and, when
    the hyperparameters have them, ``lr_scheduler``,
    ``classifier_weight_decay``, ``margin_ramp`` (with a
    ``compute_cost`` that has ``set_margin``) and
    ``validate_after_step``. Validation saves checkpoints through the
    subclass's ``on_stage_end``.

    Example
    -------
    >>> class Regression(StepBrain):
    ...     def compute_forward(self, batch, stage):
    ...         return self.modules.model(batch[0])
    ...
    ...     def compute_objectives(self, predictions, batch, stage):
    ...         return torch.nn.functional.mse_loss(predictions, batch[1])
    >>> brain = Regression(
    ...     modules={"model": torch.nn.Linear(2, 1)},
    ...     opt_class=lambda params: torch.optim.SGD(params, lr=0.1),
    ...     hparams={},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> brain.on_fit_start()
    >>> brain.nonfinite_count = 0
    >>> batch = (torch.ones(4, 2), torch.full((4, 1), float("nan")))
    >>> loss = brain.fit_batch(batch)
    >>> bool(torch.isnan(loss)), brain.skipped_batches
    (True, 1)
    """

    # Set by the recipe when a run resumes with changed hyperparameters.
    rebuild_schedule = False

    def fit_batch(self, batch):
        """Trains on one batch, skipping it when its loss is not finite.

        SpeechBrain's ``fit_batch`` counts a non-finite loss but still
        back-propagates it and steps the optimizer, so a single corrupt
        utterance (e.g. NaN samples) can turn every weight into NaN. Here the
        batch is skipped on every process (the decision is shared under
        DDP), counted and logged with its utterance IDs; more than
        ``nonfinite_patience`` skips in one validation interval stop the run.
        The batch-norm statistics its forward pass changed are restored.

        Arguments
        ---------
        batch : PaddedBatch
            The training batch.

        Returns
        -------
        torch.Tensor
            The detached loss (non-finite when skipped; it is then left out
            of the running average).
        """
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        # The forward pass updates batch-norm statistics: keep a copy to
        # undo them if the batch is skipped.
        buffers = [(b, b.detach().clone()) for b in self.modules.buffers()]
        with self.no_sync(not should_step):
            with self.training_ctx:
                outputs = self.compute_forward(batch, sb.Stage.TRAIN)
                loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            if not self.loss_is_finite_everywhere(loss):
                with torch.no_grad():
                    for buffer, saved in buffers:
                        buffer.copy_(saved)
                self.skip_nonfinite_batch(batch)
                return loss.detach().cpu()
            scaled_loss = self.scaler.scale(
                loss / self.grad_accumulation_factor
            )
            scaled_loss.backward()
        if should_step:
            self.optimizers_step()
        self.on_fit_batch_end(batch, outputs, loss, should_step)
        return loss.detach().cpu()

    def on_fit_batch_start(self, batch, should_step):
        """Sets the margin of the step, with a ``margin_ramp``.

        The LAP authors' ramp: the loss's margin is a function of the
        optimizer steps taken, set before each step's forward pass, so a
        run resumed mid-ramp continues the same curve.

        Arguments
        ---------
        batch : PaddedBatch
            The batch about to be trained on.
        should_step : bool
            Whether the optimizer steps after this batch.
        """
        if hasattr(self.hparams, "margin_ramp"):
            margin = self.hparams.margin_ramp(self.optimizer_step)
            self.hparams.compute_cost.set_margin(margin)

    def step_meta(self):
        """The step, learning rate and (when the loss has one) margin.

        Returns
        -------
        dict
            Log fields of the validation line.
        """
        meta = {
            "step": self.optimizer_step,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        margin = getattr(self.hparams.compute_cost, "margin", None)
        if isinstance(margin, float):
            meta["margin"] = round(margin, 4)
        return meta

    def loss_is_finite_everywhere(self, loss):
        """Whether the loss is finite on every process.

        Arguments
        ---------
        loss : torch.Tensor
            This process's loss.

        Returns
        -------
        bool
            True when no process has a non-finite loss.
        """
        finite = torch.isfinite(loss.detach()).all().float().reshape(1)
        if is_distributed_initialized():
            torch.distributed.all_reduce(
                finite, op=torch.distributed.ReduceOp.MIN
            )
        return bool(finite.item())

    def skip_nonfinite_batch(self, batch):
        """Drops the gradients of a skipped batch, counts and logs it.

        Arguments
        ---------
        batch : PaddedBatch
            The skipped batch (its IDs are logged).

        Raises
        ------
        RuntimeError
            When more than ``nonfinite_patience`` batches were skipped in
            this validation interval.
        """
        self.zero_grad(set_to_none=True)
        self.nonfinite_count += 1
        self.skipped_batches = getattr(self, "skipped_batches", 0) + 1
        logger.warning(
            "Non-finite loss at step %d: batch skipped (%d in this interval, "
            "%d in total). Utterances: %s",
            self.optimizer_step + 1,
            self.nonfinite_count,
            self.skipped_batches,
            ", ".join(getattr(batch, "id", None) or ["(no IDs)"]),
        )
        if self.nonfinite_count > self.nonfinite_patience:
            raise RuntimeError(
                f"{self.nonfinite_count} training batches had a non-finite "
                f"loss in this validation interval (nonfinite_patience="
                f"{self.nonfinite_patience}); the run stops. Check the "
                "utterances logged above for corrupt audio (NaN/inf "
                "samples), or lower the learning rate."
            )

    def init_optimizers(self):
        """Creates the optimizer and the per-step learning-rate schedule.

        The schedule (``hparams.lr_scheduler``, a function of the optimizer)
        is registered with the checkpointer so that a resumed run continues
        the same curve. With ``classifier_weight_decay`` the classifier's
        parameters form a second group with that weight decay (the authors'
        ECAPA-TDNN: 2e-5 on the encoder, 2e-4 on the AAM head).
        """
        if self.opt_class is None or not hasattr(
            self.hparams, "classifier_weight_decay"
        ):
            super().init_optimizers()
        else:
            head = list(self.modules.classifier.parameters())
            in_head = {id(param) for param in head}
            rest = [
                param
                for param in self.modules.parameters()
                if id(param) not in in_head
            ]
            self.optimizer = self.opt_class(
                [
                    {"params": rest},
                    {
                        "params": head,
                        "weight_decay": self.hparams.classifier_weight_decay,
                    },
                ]
            )
            self.optimizers_dict = {"opt_class": self.optimizer}
            if self.checkpointer is not None:
                self.checkpointer.add_recoverable("optimizer", self.optimizer)
        self.lr_scheduler = None
        if self.opt_class is not None:
            # The groups as the current hyperparameters make them, before a
            # schedule or a restored optimizer state changes them.
            self.fresh_param_groups = [
                {key: value for key, value in group.items() if key != "params"}
                for group in self.optimizer.param_groups
            ]
        if self.opt_class is not None and hasattr(self.hparams, "lr_scheduler"):
            self.lr_scheduler = self.hparams.lr_scheduler(self.optimizer)
            if self.checkpointer is not None and not self.rebuild_schedule:
                self.checkpointer.add_recoverable(
                    "lr_scheduler", self.lr_scheduler
                )

    def on_fit_start(self):
        """Recovers the last checkpoint, then logs where training starts.

        With ``rebuild_schedule`` (a run resumed with changed
        hyperparameters) the learning-rate schedule is not restored but
        built anew from the current hyperparameters and advanced to the
        restored optimizer step.
        """
        super().on_fit_start()
        if self.rebuild_schedule and self.lr_scheduler is not None:
            for group, fresh in zip(
                self.optimizer.param_groups,
                self.fresh_param_groups,
                strict=True,
            ):
                for key in set(group) - set(fresh) - {"params"}:
                    del group[key]  # initial_lr, max_lr...: the old schedule's
                group.update(fresh)
            self.lr_scheduler = self.hparams.lr_scheduler(self.optimizer)
            with warnings.catch_warnings():
                # "step() before optimizer.step()": replaying, not training.
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(self.optimizer_step):
                    self._step_schedule()
        self.first_step = self.optimizer_step
        if self.optimizer_step:
            logger.info(
                "Resuming at optimizer step %d of %d",
                self.optimizer_step,
                self.optimizer_step_limit,
            )

    def fit(self, *args, **kwargs):
        """SpeechBrain's ``fit``, then a log line of the steps trained.

        Arguments
        ---------
        *args : tuple
            Passed to ``Brain.fit``.
        **kwargs : dict
            Passed to ``Brain.fit``.
        """
        super().fit(*args, **kwargs)
        first = getattr(self, "first_step", self.optimizer_step)
        logger.info(
            "Training ended at optimizer step %d of %d (%d steps in this "
            "run, from step %d)",
            self.optimizer_step,
            self.optimizer_step_limit,
            self.optimizer_step - first,
            first,
        )

    def _save_intra_epoch_ckpt(self):
        """Saves an intra-epoch checkpoint that records its step."""
        self.checkpointer.save_and_keep_only(
            end_of_epoch=False,
            num_to_keep=1,
            ckpt_predicate=lambda c: INTRA_EPOCH_CKPT_FLAG in c.meta,
            meta={INTRA_EPOCH_CKPT_FLAG: True, "step": self.optimizer_step},
            verbosity=logging.DEBUG,
        )

    def _fit_valid(self, valid_set, epoch, enable):
        """Validates, unless the step is before ``validate_after_step``.

        ExploreWV2's authors neither validate nor keep a checkpoint while
        the transformer is frozen (their ``full_eval: False``), so the
        tested checkpoint is a fine-tuned one. A skipped interval still
        logs its training loss and saves a checkpoint without an EER, to
        resume from; checkpoint selection only sees those with one.
        """
        first = 0
        if hasattr(self.hparams, "validate_after_step"):
            first = self.hparams.validate_after_step
        if self.optimizer_step > first:
            return super()._fit_valid(valid_set, epoch, enable)
        self.hparams.train_logger.log_stats(
            stats_meta={
                **self.step_meta(),
                "validation": f"none until after step {first}",
            },
            train_stats=self.train_stats,
        )
        self.checkpointer.save_and_keep_only(
            meta={"step": self.optimizer_step},
            num_to_keep=1,
            ckpt_predicate=lambda c: "EER" not in c.meta,
        )
        return None

    def _wrap_distributed(self):
        """Wraps the trained modules in DDP, with batch norm synchronised.

        On GPUs this is SpeechBrain's wrapping (``nn.SyncBatchNorm``). On
        CPU (gloo) DDP rejects ``nn.SyncBatchNorm``, so batch norms become
        :class:`ProcessGroupBatchNorm`, which reduces the statistics over
        the processes on any device.
        """
        if not self.distributed_launch or self.device_type != "cpu":
            super()._wrap_distributed()
            return
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                module = ProcessGroupBatchNorm.convert(module)
                self.modules[name] = DDP(
                    module,
                    device_ids=None,
                    find_unused_parameters=self.find_unused_parameters,
                )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Advances the learning-rate schedule after each optimizer step.

        Arguments
        ---------
        batch : PaddedBatch
            The batch just trained on.
        outputs : torch.Tensor
            Its logits.
        loss : torch.Tensor
            Its loss.
        should_step : bool
            Whether the optimizer stepped on this batch.
        """
        if should_step and self.lr_scheduler is not None:
            self._step_schedule()

    def _step_schedule(self):
        # A schedule of N steps has N learning rates (last_epoch 0 to
        # N - 1): stepping after the last one would compute one past its
        # end (negative with linear annealing).
        total = getattr(self.lr_scheduler, "total_steps", None)
        if total is None or self.lr_scheduler.last_epoch < total - 1:
            self.lr_scheduler.step()
