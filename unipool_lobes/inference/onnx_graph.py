"""The exportable forward pass of a model folder: waveforms to embeddings.

``EmbeddingGraph`` wraps a ``MultiLayerSSL`` front-end and a backend
(UniPool, LAP, MHFA, mean pool...) into one module whose forward has no
data-dependent Python control flow, so that ``torch.onnx.export`` can trace
it into one graph with dynamic batch and length axes. It gives what
``SpeakerVerifier._embed`` gives (after ``squeeze(1)``): the eager
front-end takes its unmasked, faster branches when nothing is padded; this
one always takes the masked branch, which gives the same values (an
all-valid mask changes nothing). The input checks of the eager path (too
short, non-finite, lengths outside (0, 1]) are the runtime's job
(``unipool_lobes.inference.onnx_runtime``), before the graph runs.

A base model's GroupNorm CNN normalises over time: its padding-exact
batched form is the front-end's masked CNN (``cnn_batching="masked"``,
``unipool_lobes.frontends.masked_cnn``); without it such a model is
refused, since its per-length loop cannot be exported.

Authors
 * unipool-sv developers 2026
"""

import torch
import torch.nn.functional as F
from torch import nn

from unipool_lobes.frontends.ssl_lengths import (
    _lengths_to_mask,
    normalize_waveforms,
)

__all__ = ["EmbeddingGraph", "OnnxExportError", "check_exportable"]


class OnnxExportError(ValueError):
    """A model that cannot be exported, or an export that fails its check."""


def check_exportable(front_end, backend):
    """Refuses the modules that have no exportable forward pass.

    Arguments
    ---------
    front_end : torch.nn.Module
        The model folder's front-end (a ``MultiLayerSSL``).
    backend : torch.nn.Module
        The model folder's ``embedding_model``.

    Raises
    ------
    OnnxExportError
        For another front-end (fbank, MFCC, waveform), a front-end in
        training mode or fine-tuning mode with layer drop, or a GroupNorm
        CNN without the masked CNN.

    Example
    -------
    >>> from unipool_lobes.frontends.fbank import Fbank
    >>> try:
    ...     check_exportable(Fbank(), nn.Identity())
    ... except OnnxExportError as error:
    ...     print(str(error)[:47])
    the ONNX export needs a MultiLayerSSL front-end
    """
    from unipool_lobes.frontends.ssl import MultiLayerSSL

    if not isinstance(front_end, MultiLayerSSL):
        raise OnnxExportError(
            "the ONNX export needs a MultiLayerSSL front-end; this model's "
            f"is {type(front_end).__name__}"
        )
    if front_end.training or backend.training:
        raise OnnxExportError("export the modules in eval mode")
    if _needs_masked_cnn(front_end) and not _has_masked_cnn(front_end):
        raise OnnxExportError(
            "this model's CNN normalises over time (GroupNorm, base models) "
            "and its padding-exact per-length loop cannot be exported; it "
            "needs the masked CNN (MultiLayerSSL cnn_batching='masked')"
        )


class EmbeddingGraph(nn.Module):
    """Front-end then backend, with no branch on tensor values.

    Arguments
    ---------
    front_end : unipool_lobes.frontends.ssl.MultiLayerSSL
        The front-end, in eval mode.
    backend : torch.nn.Module
        The ``embedding_model``: ``(hidden_states, lengths) -> [B, K, E]``.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> folder = write_local_model(
    ...     str(getfixture("tmp_path")), feat_extract_norm="layer"
    ... )
    >>> ssl = MultiLayerSSL(folder).eval()
    >>> backend = UniPool(32, 2, conv_channels=8).eval()
    >>> graph = EmbeddingGraph(ssl, backend)
    >>> wavs, wav_lens = torch.randn(2, 8000), torch.tensor([1.0, 0.5])
    >>> embeddings = graph(wavs, wav_lens)
    >>> eager = backend(*ssl(wavs, wav_lens)).squeeze(1)
    >>> embeddings.shape, torch.allclose(embeddings, eager, atol=1e-5)
    (torch.Size([2, 192]), True)
    """

    def __init__(self, front_end, backend):
        super().__init__()
        check_exportable(front_end, backend)
        self.front_end = front_end
        self.backend = backend
        self.eval()

    def forward(self, wavs, wav_lens):
        """Embeddings of a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, S]`` float32 waveforms, zero-padded on the right.
        wav_lens : torch.Tensor
            ``[B]`` float32 lengths relative to ``S``, in (0, 1].

        Returns
        -------
        torch.Tensor
            ``[B, E]`` float32 embeddings, not normalised.
        """
        hidden_states, feat_lens = self._features(wavs, wav_lens)
        embeddings = self.backend(hidden_states, feat_lens).float()
        if embeddings.shape[1] != 1:  # window sets: their mean unit vector
            embeddings = F.normalize(embeddings, dim=-1).mean(dim=1)
            return embeddings
        return embeddings[:, 0]

    def _features(self, wavs, wav_lens):
        """``MultiLayerSSL._extract`` on its masked branch."""
        ssl = self.front_end
        num_samples = wavs.shape[1]
        sample_lens = torch.round(wav_lens.double() * num_samples).long()
        sample_lens = sample_lens.clamp(1, num_samples)
        frame_lens = ssl.frame_lengths(sample_lens)
        wav = wavs.to(next(ssl.model.parameters()).dtype)
        if ssl.do_normalize:
            wav = normalize_waveforms(wav, sample_lens)
        else:
            wav = wav.masked_fill(
                ~_lengths_to_mask(sample_lens, num_samples), 0
            )
        features = _run_cnn(ssl, wav, sample_lens)
        num_frames = features.shape[1]
        frame_mask = _lengths_to_mask(frame_lens, num_frames)
        hidden = ssl.model.feature_projection(features)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        if ssl.cls_frame:
            hidden = torch.cat(
                [hidden.new_ones(hidden.shape[0], 1, hidden.shape[2]), hidden],
                dim=1,
            )
            frame_lens = frame_lens + 1
            num_frames = num_frames + 1
            frame_mask = torch.cat(
                [frame_mask.new_ones(frame_mask.shape[0], 1), frame_mask],
                dim=1,
            )
        hidden_states = ssl._encode(hidden, frame_mask)
        hidden_states = hidden_states.masked_fill(
            ~frame_mask[:, None, :, None], 0
        )
        feat_lens = frame_lens.to(hidden_states.dtype) / num_frames
        return hidden_states, feat_lens


def _needs_masked_cnn(ssl):
    """Whether the eager front-end runs its CNN length by length."""
    return bool(ssl.exact_padding and ssl._cnn_pools_over_time)


def _has_masked_cnn(ssl):
    """Whether the front-end offers the batched, padding-exact CNN."""
    return callable(getattr(ssl, "_cnn_masked", None))


def _run_cnn(ssl, wav, sample_lens):
    """The CNN features ``[B, T, C]`` of a padded batch, as eager gives."""
    if not _needs_masked_cnn(ssl):
        return ssl.model.feature_extractor(wav).transpose(1, 2)
    return ssl._cnn_masked(wav, sample_lens)
