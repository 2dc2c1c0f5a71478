"""Sub-centre AAM-softmax with inter-top-K margins, and its margin ramp.

The LAP authors' loss (``spec/lap_pipeline.md`` §4): each class keeps
``sub_centers`` weight vectors and its cosine is the largest of theirs
(:class:`SubCenterClassifier`); the target logit is ``cos(θ_y + m)`` (or
``cos θ_y - m sin(π - m)`` past ``θ_y = π - m``), the ``top_k`` hardest
non-target logits become ``cos(θ_j - m')``, every logit is scaled by ``s``
and cross-entropy is averaged (:class:`InterTopKAAMLoss`). In the first
phase the margin grows on a logarithmic ramp (:class:`LogMarginRamp`),
``m'`` in proportion.

Authors
 * unipool-sv developers 2026
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InterTopKAAMLoss", "LogMarginRamp", "SubCenterClassifier"]


class SubCenterClassifier(nn.Module):
    """Cosine of each class: the best of its sub-centres.

    Arguments
    ---------
    input_size : int
        Embedding size ``E``.
    out_neurons : int
        Number of classes.
    sub_centers : int
        Weight vectors per class (3 in the LAP pipeline).

    Example
    -------
    >>> head = SubCenterClassifier(192, 10, sub_centers=3)
    >>> head.weight.shape
    torch.Size([3, 192, 10])
    >>> cosines = head(torch.randn(4, 1, 192))
    >>> cosines.shape, bool(cosines.abs().max() <= 1)
    (torch.Size([4, 1, 10]), True)
    """

    def __init__(self, input_size, out_neurons, sub_centers=3):
        super().__init__()
        self.weight = nn.Parameter(
            torch.empty(sub_centers, input_size, out_neurons)
        )
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embeddings):
        """Returns the cosines ``[B, 1, C]``.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[B, 1, E]`` or ``[B, E]``.

        Returns
        -------
        torch.Tensor
            ``[B, 1, C]`` cosine of each class (its best sub-centre).
        """
        if embeddings.dim() == 3:
            embeddings = embeddings.squeeze(1)
        unit = F.normalize(embeddings, dim=-1)
        centres = F.normalize(self.weight, dim=1)
        cosines = torch.einsum("be,kec->bkc", unit, centres)
        return cosines.max(dim=1).values.unsqueeze(1)


class InterTopKAAMLoss(nn.Module):
    """AAM-softmax on cosines, with a margin on the hardest negatives too.

    Arguments
    ---------
    margin : float
        Additive angular margin ``m`` of the target.
    scale : float
        Logit scale ``s``.
    top_k : int
        Non-target classes with the highest cosines that get ``m'``; 0
        turns it off.
    top_k_penalty : float
        ``m'`` at the full ``margin``; it follows the margin in proportion
        (:meth:`set_margin`) and is 0 while the margin is at most 0.001.

    Example
    -------
    >>> loss = InterTopKAAMLoss(
    ...     margin=0.3, scale=30, top_k=2, top_k_penalty=0.06
    ... )
    >>> cosines = torch.tensor([[[0.9, 0.1, 0.5, -0.2]]])
    >>> value = loss(cosines, torch.tensor([[0]]))
    >>> bool(value > 0)
    True
    >>> loss.set_margin(0.15)
    >>> round(loss.top_k_margin, 4)
    0.03
    """

    def __init__(self, margin=0.3, scale=30.0, top_k=5, top_k_penalty=0.06):
        super().__init__()
        self.full_margin = float(margin)
        self.full_penalty = float(top_k_penalty)
        self.scale = float(scale)
        self.top_k = int(top_k)
        self.set_margin(margin)

    def set_margin(self, margin):
        """Sets ``m`` and, in proportion, ``m'``.

        Arguments
        ---------
        margin : float
            The new margin.
        """
        self.margin = float(margin)
        if self.margin <= 0.001 or not self.full_margin:
            self.top_k_margin = 0.0
        else:
            ratio = self.margin / self.full_margin
            self.top_k_margin = self.full_penalty * ratio

    def logits(self, cosines, targets):
        """The scaled logits the cross-entropy sees.

        Arguments
        ---------
        cosines : torch.Tensor
            ``[B, 1, C]`` or ``[B, C]`` class cosines.
        targets : torch.Tensor
            ``[B, 1]`` or ``[B]`` class indices.

        Returns
        -------
        torch.Tensor
            ``[B, C]`` logits.
        """
        if cosines.dim() == 3:
            cosines = cosines.squeeze(1)
        targets = targets.reshape(-1).long()
        cosines = cosines.float()
        is_target = F.one_hot(targets, cosines.shape[1]).bool()
        m = self.margin
        sine = torch.sqrt((1.0 - cosines * cosines).clamp(min=0.0))
        target = cosines * math.cos(m) - sine * math.sin(m)
        past = cosines <= math.cos(math.pi - m)
        target = torch.where(past, cosines - m * math.sin(math.pi - m), target)
        logits = torch.where(is_target, target, cosines)
        if self.top_k > 0 and self.top_k_margin > 0:
            others = cosines.masked_fill(is_target, -2.0)
            k = min(self.top_k, cosines.shape[1] - 1)
            hardest = others.topk(k, dim=1).indices
            mp = self.top_k_margin
            raised = cosines * math.cos(mp) + sine * math.sin(mp)
            chosen = torch.zeros_like(is_target).scatter_(1, hardest, True)
            logits = torch.where(chosen, raised, logits)
        return self.scale * logits

    def forward(self, cosines, targets, length=None):
        """Returns the mean cross-entropy.

        Arguments
        ---------
        cosines : torch.Tensor
            ``[B, 1, C]`` class cosines (a classifier's output).
        targets : torch.Tensor
            ``[B, 1]`` class indices.
        length : torch.Tensor, optional
            Unused (SpeechBrain's loss signature).

        Returns
        -------
        torch.Tensor
            The loss, a scalar.
        """
        return F.cross_entropy(
            self.logits(cosines, targets), targets.reshape(-1).long()
        )


class LogMarginRamp:
    """The LAP authors' logarithmic margin ramp.

    At ramp step ``t`` of ``steps`` (``x_t`` spaced evenly from ``start``
    to 1), the margin is ``final * ln(x_t / start) / ln(1 / start)``: 0 at
    the first step, ``final`` at the last and after.

    Arguments
    ---------
    final_margin : float
        The margin at the end of the ramp (0.3).
    steps : int
        Optimizer steps of the ramp (the first half of phase 1).
    start : float
        The first ``x`` (0.005).

    Example
    -------
    >>> ramp = LogMarginRamp(0.3, steps=101)
    >>> [round(ramp(t), 3) for t in (0, 50, 100, 500)]
    [0.0, 0.261, 0.3, 0.3]
    """

    def __init__(self, final_margin=0.3, steps=1, start=0.005):
        if steps < 1 or not 0 < start < 1:
            raise ValueError(
                f"LogMarginRamp needs steps >= 1 and 0 < start < 1, got "
                f"steps={steps}, start={start}"
            )
        self.final_margin = float(final_margin)
        self.steps = int(steps)
        self.start = float(start)

    def __call__(self, step):
        """The margin at optimizer step ``step`` (0-based).

        Arguments
        ---------
        step : int
            Optimizer steps taken so far.

        Returns
        -------
        float
            The margin.
        """
        if self.steps == 1 or step >= self.steps - 1:
            return self.final_margin
        x = self.start + (1.0 - self.start) * step / (self.steps - 1)
        return (
            self.final_margin
            * math.log(x / self.start)
            / math.log(1.0 / self.start)
        )
