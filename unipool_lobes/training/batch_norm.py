"""Batch normalisation synchronised over the DDP process group on any device.

``nn.SyncBatchNorm`` runs on GPUs only; :class:`ProcessGroupBatchNorm`
reduces the training statistics over the process group on CPU (gloo) too,
through :func:`unipool_lobes.nnet.masking.masked_batch_norm`. SpeechBrain
home: a core fix to ``speechbrain.core.Brain``'s DDP wrapping (a separate
upstream PR), meanwhile a training utility here.

Authors
 * unipool-sv developers 2026
"""

from torch import nn

from unipool_lobes.nnet.masking import masked_batch_norm, sync_group

__all__ = ["ProcessGroupBatchNorm"]


class ProcessGroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation synchronised over the DDP group on any device.

    ``nn.SyncBatchNorm`` only runs on GPUs, and DDP refuses it on CPU
    modules, so SpeechBrain's gloo DDP on CPU fails for any model with batch
    norm. This class computes the training statistics over the whole
    process group (through :func:`masked_batch_norm`) on CPU too; it keeps
    the parameters, buffers and state-dict keys of the batch norm it
    replaces. Outside DDP, or in evaluation, it is a plain batch norm.

    Arguments
    ---------
    num_features : int
        Number of channels (axis 1 of the input).
    eps : float
        Added to the variance.
    momentum : float
        Running statistics momentum.
    affine : bool
        Whether there is a learnable scale and shift.
    track_running_stats : bool
        Whether running statistics are kept.

    Example
    -------
    >>> import torch
    >>> model = nn.Sequential(nn.Conv1d(2, 3, 1), nn.BatchNorm1d(3))
    >>> model = ProcessGroupBatchNorm.convert(model)
    >>> type(model[1]).__name__
    'ProcessGroupBatchNorm'
    >>> model(torch.randn(4, 2, 5)).shape
    torch.Size([4, 3, 5])
    """

    # Read by unipool_lobes.nnet.masking.sync_group.
    syncs_over_process_group = True

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
    ):
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats
        )
        self.process_group = None

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(
                f"expected an input of 2 or more dimensions, got {input.dim()}"
            )

    def forward(self, x):
        """Normalises ``x`` with statistics of the whole process group.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C]`` or ``[B, C, ...]`` input.

        Returns
        -------
        torch.Tensor
            The normalised input.
        """
        if not (self.training and sync_group(self) is not None):
            return super().forward(x)
        if x.dim() == 2:
            return masked_batch_norm(self, x.unsqueeze(-1)).squeeze(-1)
        return masked_batch_norm(self, x)

    @classmethod
    def convert(cls, module):
        """Replaces every batch norm inside ``module`` by this class.

        Parameters and buffers are shared with the replaced modules, so
        optimizers, checkpoints and DDP see the same tensors.

        Arguments
        ---------
        module : torch.nn.Module
            The module to convert (in place where it is not itself a norm).

        Returns
        -------
        torch.nn.Module
            The converted module.
        """
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not (
            isinstance(module, cls)
        ):
            converted = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
            )
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.train(module.training)
            return converted
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module
