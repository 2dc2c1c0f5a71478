"""The lengths-aware multi-layer front-end over HF speech models.

``MultiLayerSSL`` wraps a wav2vec2-style model of Hugging Face transformers
(wav2vec 2.0, HuBERT, WavLM) and returns the hidden states of all its layers,
stacked as ``[B, L, T, D]``, with the relative frame lengths. Unlike
SpeechBrain's ``WeightedSSLModel`` it uses the lengths: an utterance's
features do not depend on what else is in the batch.

Where padding can leak into a valid frame, and what this module does:

* Waveform normalisation (``do_normalize`` checkpoints): statistics over the
  utterance's own samples only, as HF's feature extractor computes them.
* The CNN feature encoder of ``feat_extract_norm="group"`` models (the base
  models) normalises its first layer over time, padding included; HF advises
  not to pass an attention mask to them. With ``exact_padding=True`` the CNN
  runs on each utterance's true samples (utterances of equal length together,
  so equal-length training crops stay one batched call). ``"layer"`` CNNs
  (large models) are local in time and run batched.
* The transformer gets the frame-level mask from the model's own conv-length
  formula; the HF encoder zeroes the padded frames before the positional
  convolution and masks them as attention keys (WavLM's bucketed, gated
  relative position bias depends on relative positions and on the query frame
  only, so it needs nothing more).

The source and checkpoint helpers live in
:mod:`unipool_lobes.frontends.ssl_sources`, the length, mask and
normalisation helpers in :mod:`unipool_lobes.frontends.ssl_lengths`; their
public names are importable from here as well.

Authors
 * unipool-sv developers 2026
"""

import inspect
import warnings

import torch
from torch import nn

from unipool_lobes.frontends.masked_cnn import masked_cnn_features
from unipool_lobes.frontends.ssl_lengths import (
    NORMALIZE_EPS,
    _absolute_lengths,
    _lengths_to_mask,
    normalize_waveforms,
)
from unipool_lobes.frontends.ssl_sources import (
    load_ssl_model,
    read_feature_extractor,
    resolve_source,
)

__all__ = [
    "NORMALIZE_EPS",
    "MultiLayerSSL",
    "normalize_waveforms",
    "read_feature_extractor",
    "resolve_source",
]

# Normalisations whose statistics span the time axis: a CNN that holds one
# depends on the padding of the batch.
_TIME_POOLING_NORMS = (nn.GroupNorm, nn.modules.batchnorm._NormBase)

# cnn_batching="auto": the exact way of running such a CNN on a padded batch,
# per device type. CPU: the per-length loop; benchmarks/bench_cnn_batching.py
# (wav2vec2 base, 2-20 s utterances, 1 thread, shared 2-core machine) timed
# the masked one pass at 1.18x the loop's time for batches of 32 and 1.77x
# and 2.31x for batches of 8 (it convolves the padding too: 1.7-1.8x the
# true samples; naive batching costs about the same). CUDA was not
# measured: masked there, as one batched launch per layer instead of one
# per distinct length. Other devices: masked.
CNN_BATCHING_AUTO = {"cpu": "per_length", "cuda": "masked"}
CNN_BATCHING_CHOICES = ("auto", "per_length", "masked")


class MultiLayerSSL(nn.Module):
    """All hidden states of a pretrained speech model, padding-invariant.

    The HF model is loaded with ``AutoModel.from_pretrained(source,
    cache_dir=save_path)``, or built from an inline ``config`` (a pretrained
    folder's yaml: the weights then come from its ``front_end.ckpt``).
    The config's own layerdrop is set to 0 (HF's skip would leave a hole in
    the stack); this module's ``layerdrop`` does it instead, filling the
    hole. SpecAugment masking is off unless
    ``apply_spec_augment``.

    Each transformer entry of the output is the raw output of its layer.
    Models with ``do_stable_layer_norm`` (the large ones) apply one more
    LayerNorm after the last layer; no entry here gets it, as in the
    ``hidden_states`` of transformers 5 (transformers 4 applied it to the
    last entry). So the entries of kept layers are the same whatever
    ``num_layers`` is. The padded frames of every layer are set to zero.

    With ``freeze=True`` the lobe has no trainable parameter, so
    SpeechBrain does not wrap it in DDP. When fine-tuning, parameters that
    cannot reach the output are frozen, so DDP needs no
    ``find_unused_parameters``.

    Arguments
    ---------
    source : str, optional
        A hub id (e.g. ``"facebook/wav2vec2-base"``) or a local folder that
        holds ``config.json`` and the weights. A path that looks local
        (``/``, ``./``, ``../`` or ``~`` first, a backslash, or more than
        one ``/``) must exist: it is never looked up on the hub. Give
        either ``source`` or ``config``.
    save_path : str, optional
        The HF cache folder for hub downloads.
    freeze : bool
        If True (default), no parameter gets gradients, the model stays in
        eval mode even when the lobe is trained, and forward runs under
        ``torch.no_grad()``.
    freeze_feature_extractor : bool
        With ``freeze=False``: keep the CNN feature encoder frozen (no
        gradients, run under ``torch.no_grad()``) and fine-tune the rest.
    num_layers : int, optional
        Keep only the first ``num_layers`` transformer layers (the others
        are removed from the model); default all.
    exact_padding : bool
        If True (default), run a CNN that normalises over time on each
        utterance's true samples, so that padding changes nothing (one CNN
        call per distinct length, on fewer samples). If False, run it once
        on the padded batch, whose padding then shifts the group-norm
        statistics; the frame mask still reaches the transformer, as in
        HF's batched call with an attention mask.
    do_normalize : bool, optional
        Normalise each waveform to zero mean and unit variance over its true
        samples. Default: the ``do_normalize`` of the checkpoint's
        feature-extractor config (False when it has none).
    apply_spec_augment : bool
        Apply the model's own SpecAugment masking (its ``mask_time_prob``
        etc.) in training mode when fine-tuning. Default False.
    cls_frame : bool
        Prepend a frame of ones to the transformer input, after the feature
        projection (and its SpecAugment masking): FinetuneWV2's CLS frame,
        whose transformer output is the embedding. It is frame 0 of every
        hidden state but the first, the lengths count it, and the returned
        frames are one more. Default False.
    layerdrop : float
        In training (not frozen), drop each transformer layer with this
        probability (the whole batch alone: fairseq's and HF's LayerDrop;
        at least one layer runs). A dropped layer's hidden state repeats
        its input. Under DDP, pass ``--find_unused_parameters``. Default 0.
    final_layer_norm : bool
        For stable-layer-norm models (``do_stable_layer_norm``: the large
        wav2vec 2.0 / HuBERT / WavLM), pass the last hidden state through
        the encoder's final LayerNorm, as ``output_hidden_states`` of
        transformers 4.x did (the UniPool paper's numbers were obtained so;
        transformers 5 returns the layer's raw output). No effect on other
        models, whose encoder LayerNorm comes before the first layer.
        Default False.
    frozen_steps : int
        With ``freeze=False``: the first ``frozen_steps`` forward passes
        in training mode run the model as if frozen (eval mode, no
        gradients, no masking); later ones fine-tune it (ExploreWV2 keeps
        the transformer frozen for its first 10,000 steps). The passes are
        counted in the buffer ``training_forwards``, saved and restored
        with the lobe's state dict, so a resumed run switches at the same
        step. The parameters keep ``requires_grad`` from the start, so an
        optimizer built before the switch holds them. Under DDP a frozen
        pass gives no gradient to reduce, so no DDP option is needed.
        Default 0 (no frozen phase).
    config_overrides : dict, optional
        Values set on the model's config before it is built, e.g.
        ``{"mask_time_prob": 0.05, "mask_time_length": 10}``; an unknown
        key is an error. The config's ``layerdrop`` is always 0 (see
        ``layerdrop`` above).
    cnn_batching : str
        How ``exact_padding=True`` runs a CNN that normalises over time on
        a padded batch; all give the same features (to float rounding).
        ``"per_length"``: one CNN call per distinct length, on the true
        samples. ``"masked"``: one call on the padded batch, the group norm
        taking its statistics over each utterance's valid frames only
        (:mod:`unipool_lobes.frontends.masked_cnn`; traceable, for ONNX).
        ``"auto"`` (default): the faster of the two on the input's device
        (``CNN_BATCHING_AUTO``).
    config : dict, optional
        Instead of ``source``: the HF config as a mapping (``model_type``
        and the config's values, as a pretrained folder's yaml inlines
        them: :func:`unipool_lobes.frontends.ssl_sources.portable_config`).
        The model is built with random weights (``AutoModel.from_config``),
        to be loaded from a checkpoint (the folder's ``front_end.ckpt``);
        nothing is read from a path or the hub.
    sample_rate : int, optional
        The sample rate the model expects. Default: the checkpoint's
        feature-extractor config with ``source``, 16000 with ``config``
        (``do_normalize`` then defaults to False).
    **from_pretrained_kwargs
        Passed to ``AutoConfig`` and ``AutoModel.from_pretrained`` (e.g.
        ``revision``); unused with ``config``.

    Raises
    ------
    FileNotFoundError
        When a local-looking ``source`` does not exist.
    ValueError
        For a ``num_layers`` out of range, or a negative ``frozen_steps``
        or one given with ``freeze=True``.
    TypeError
        When the model is not a wav2vec2-style speech model.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> folder = write_local_model(str(getfixture("tmp_path")), "wavlm", "tiny")
    >>> ssl = MultiLayerSSL(folder)
    >>> wav = torch.randn(2, 16000)
    >>> hidden_states, frame_lens = ssl(wav, torch.tensor([1.0, 0.5]))
    >>> hidden_states.shape
    torch.Size([2, 3, 49, 32])
    >>> frame_lens
    tensor([1.0000, 0.4898])
    >>> ssl.num_hidden_states, ssl.hidden_size, ssl.sample_rate
    (3, 32, 16000)
    """

    def __init__(
        self,
        source=None,
        save_path=None,
        freeze=True,
        freeze_feature_extractor=False,
        num_layers=None,
        exact_padding=True,
        do_normalize=None,
        apply_spec_augment=False,
        cls_frame=False,
        layerdrop=0.0,
        final_layer_norm=False,
        frozen_steps=0,
        config_overrides=None,
        cnn_batching="auto",
        config=None,
        sample_rate=None,
        **from_pretrained_kwargs,
    ):
        super().__init__()
        if cnn_batching not in CNN_BATCHING_CHOICES:
            raise ValueError(
                f"cnn_batching must be one of {CNN_BATCHING_CHOICES}, got "
                f"{cnn_batching!r}"
            )
        self.cnn_batching = cnn_batching
        if frozen_steps < 0 or (frozen_steps and freeze):
            raise ValueError(
                f"frozen_steps={frozen_steps} needs freeze=False and must "
                "not be negative (freeze=True keeps the model frozen for "
                "the whole run)"
            )
        self.frozen_steps = int(frozen_steps)
        if self.frozen_steps:
            # Persistent: checkpointed with the lobe, so resuming continues
            # the count. Only registered when used, so that other state
            # dicts keep their keys.
            self.register_buffer(
                "training_forwards", torch.zeros((), dtype=torch.long)
            )
        self.model, config = load_ssl_model(
            source,
            config,
            save_path,
            config_overrides,
            apply_spec_augment,
            **from_pretrained_kwargs,
        )
        checkpoint_normalize, self.sample_rate = (
            (False, 16000)
            if source is None
            else read_feature_extractor(resolve_source(source), save_path)
        )
        if sample_rate is not None:
            self.sample_rate = int(sample_rate)
        self.do_normalize = (
            checkpoint_normalize if do_normalize is None else bool(do_normalize)
        )
        self.freeze = freeze
        self.freeze_feature_extractor = freeze_feature_extractor
        self.exact_padding = exact_padding
        self.apply_spec_augment = apply_spec_augment
        self.cls_frame = bool(cls_frame)
        if not 0.0 <= layerdrop < 1.0:
            raise ValueError(f"layerdrop must be in [0, 1), got {layerdrop}")
        self.layerdrop = float(layerdrop)
        self.final_layer_norm = bool(final_layer_norm) and bool(
            getattr(config, "do_stable_layer_norm", False)
        )

        if num_layers is not None:
            self._keep_first_layers(num_layers)
        self._cnn_pools_over_time = any(
            isinstance(module, _TIME_POOLING_NORMS)
            for module in self.model.feature_extractor.modules()
        )
        self._freeze_unused_parameters()
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()
        if freeze or freeze_feature_extractor:
            self.model.feature_extractor.requires_grad_(False)
            # HF's own flag: stops the encoder from asking for input grads.
            self.model.feature_extractor._requires_grad = False

    @property
    def num_hidden_states(self):
        """L: the CNN/projection entry plus one per transformer layer kept."""
        return len(self.model.encoder.layers) + 1

    @property
    def hidden_size(self):
        """D: the model's hidden size."""
        return self.model.config.hidden_size

    def frame_lengths(self, sample_lengths):
        """Frames the model makes of each length, by its conv-length formula.

        Arguments
        ---------
        sample_lengths : torch.Tensor or int
            Lengths in samples.

        Returns
        -------
        torch.Tensor
            Lengths in frames (long).

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> ssl = MultiLayerSSL(write_local_model(str(getfixture("tmp_path"))))
        >>> ssl.frame_lengths(torch.tensor([400, 16000, 32000]))
        tensor([ 1, 49, 99])
        """
        lengths = torch.as_tensor(sample_lengths, dtype=torch.long)
        formula = self.model._get_feat_extract_output_lengths
        # The adapter, if any, acts after the encoder: not on these frames.
        if "add_adapter" in inspect.signature(formula).parameters:
            return formula(lengths, add_adapter=False).long()
        return formula(lengths).long()

    def train(self, mode=True):
        """Sets the training mode; a frozen model stays in eval mode.

        Arguments
        ---------
        mode : bool
            Training mode (True) or evaluation mode (False).

        Returns
        -------
        MultiLayerSSL
            self.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> ssl = MultiLayerSSL(write_local_model(str(getfixture("tmp_path"))))
        >>> ssl.train().training, ssl.model.training
        (True, False)
        """
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, wav, wav_lens=None):
        """Returns the hidden states of every layer and the frame lengths.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``[B, S]``, zero-padded on the right.
        wav_lens : torch.Tensor, optional
            Relative lengths ``[B]`` in (0, 1]; None means all full.

        Returns
        -------
        hidden_states : torch.Tensor
            ``[B, L, T, D]``: the input of the first transformer layer, then
            the output of each layer kept; padded frames are zero.
        frame_lens : torch.Tensor
            ``[B]`` frame lengths relative to T.

        Raises
        ------
        ValueError
            For a badly shaped input, relative lengths outside (0, 1], or an
            utterance shorter than one frame.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> ssl = MultiLayerSSL(write_local_model(str(getfixture("tmp_path"))))
        >>> hidden_states, frame_lens = ssl(torch.randn(3, 8000))
        >>> hidden_states.shape, frame_lens.tolist()
        (torch.Size([3, 3, 24, 32]), [1.0, 1.0, 1.0])
        """
        if self.freeze:
            with torch.no_grad():
                return self._extract(wav, wav_lens)
        if self.frozen_steps and self.training:
            frozen = self.in_frozen_phase
            self.training_forwards += 1
            if frozen:
                return self._extract_as_frozen(wav, wav_lens)
        return self._extract(wav, wav_lens)

    @property
    def in_frozen_phase(self):
        """Whether the next training forward pass runs the model frozen.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> folder = write_local_model(str(getfixture("tmp_path")))
        >>> ssl = MultiLayerSSL(folder, freeze=False, frozen_steps=1).train()
        >>> phases = []
        >>> for _ in range(2):
        ...     phases.append(ssl.in_frozen_phase)
        ...     hidden_states, _ = ssl(torch.randn(1, 4000))
        >>> phases, hidden_states.requires_grad
        ([True, False], True)
        """
        if not self.frozen_steps:
            return False
        return int(self.training_forwards) < self.frozen_steps

    def _extract_as_frozen(self, wav, wav_lens):
        """The forward pass in eval mode and without gradients."""
        self.train(False)
        try:
            with torch.no_grad():
                return self._extract(wav, wav_lens)
        finally:
            self.train(True)

    def _extract(self, wav, wav_lens):
        """The forward pass; see ``forward``."""
        sample_lens = _absolute_lengths(wav, wav_lens)
        frame_lens = self.frame_lengths(sample_lens.cpu()).to(wav.device)
        too_short = (frame_lens < 1).nonzero().flatten().tolist()
        if too_short:
            raise ValueError(
                f"utterances {too_short} of the batch are too short for one "
                f"frame of the model (lengths in samples: "
                f"{sample_lens[too_short].tolist()})"
            )
        num_frames = int(self.frame_lengths(wav.shape[1]))
        samples_padded = bool((sample_lens < wav.shape[1]).any())
        wav = wav.to(next(self.model.parameters()).dtype)
        if self.do_normalize:
            wav = normalize_waveforms(wav, sample_lens)
        elif samples_padded:
            wav = wav.masked_fill(
                ~_lengths_to_mask(sample_lens, wav.shape[1]), 0
            )

        if self.exact_padding and self._cnn_pools_over_time and samples_padded:
            batching = self.cnn_batching
            if batching == "auto":
                batching = CNN_BATCHING_AUTO.get(wav.device.type, "masked")
            if batching == "masked":
                features = self._cnn_masked(wav, sample_lens)
            else:
                features = self._cnn_by_length(wav, sample_lens, num_frames)
        else:
            features = self._cnn(wav)

        padded = bool((frame_lens < num_frames).any())
        frame_mask = (
            _lengths_to_mask(frame_lens, num_frames) if padded else None
        )
        hidden = self.model.feature_projection(features)
        if isinstance(hidden, tuple):  # wav2vec2 and WavLM also return the norm
            hidden = hidden[0]
        if self.apply_spec_augment and self.training and not self.freeze:
            hidden = self.model._mask_hidden_states(
                hidden, attention_mask=frame_mask
            )
        if self.cls_frame:
            hidden = torch.cat(
                [hidden.new_ones(hidden.shape[0], 1, hidden.shape[2]), hidden],
                dim=1,
            )
            frame_lens = frame_lens + 1
            num_frames += 1
            if frame_mask is not None:
                frame_mask = torch.cat(
                    [frame_mask.new_ones(frame_mask.shape[0], 1), frame_mask],
                    dim=1,
                )
        hidden_states = self._encode(hidden, frame_mask)
        if padded:
            hidden_states.masked_fill_(~frame_mask[:, None, :, None], 0)
        return hidden_states, frame_lens.to(hidden_states.dtype) / num_frames

    def _cnn(self, wav):
        """CNN feature encoder on a batch: ``[B, S]`` -> ``[B, T, C]``."""
        if self.freeze_feature_extractor and torch.is_grad_enabled():
            with torch.no_grad():
                return self.model.feature_extractor(wav).transpose(1, 2)
        return self.model.feature_extractor(wav).transpose(1, 2)

    def _cnn_masked(self, wav, sample_lens):
        """CNN features of the padded batch in one call, exact (masked)."""
        extractor = self.model.feature_extractor
        if self.freeze_feature_extractor and torch.is_grad_enabled():
            with torch.no_grad():
                return masked_cnn_features(extractor, wav, sample_lens)
        return masked_cnn_features(extractor, wav, sample_lens)

    def _cnn_by_length(self, wav, sample_lens, num_frames):
        """CNN features of each utterance from its true samples only."""
        features = None
        for length in torch.unique(sample_lens).tolist():
            rows = (sample_lens == length).nonzero().flatten()
            group = self._cnn(wav[rows, :length])
            if features is None:
                features = group.new_zeros(
                    wav.shape[0], num_frames, group.shape[-1]
                )
            features[rows, : group.shape[1]] = group
        return features

    def _encode(self, hidden, frame_mask):
        """Runs the HF encoder, keeping the input and output of each layer.

        Each one is written into a preallocated ``[B, L, T, D]`` tensor as
        soon as it exists, so that a frozen model holds no second copy. A
        layer dropped by LayerDrop passes its input on unchanged, so its
        entry repeats the previous one.
        """
        layers = self.model.encoder.layers
        batch, num_frames, width = hidden.shape
        stacked = hidden.new_empty(
            batch, self.num_hidden_states, num_frames, width
        )
        kept = self._layers_to_run(len(layers))
        last = len(layers) - 1

        def _keep_input(module, args, kwargs):
            stacked[:, 0] = args[0] if args else kwargs["hidden_states"]

        def _keep_output_of(index):
            def _keep_output(module, args, output):
                tensor = output[0] if isinstance(output, tuple) else output
                if index == last and self.final_layer_norm:
                    tensor = self.model.encoder.layer_norm(tensor)
                stacked[:, index + 1] = tensor

            return _keep_output

        handles = [
            layers[kept[0]].register_forward_pre_hook(
                _keep_input, with_kwargs=True
            )
        ]
        handles += [
            layers[index].register_forward_hook(_keep_output_of(index))
            for index in kept
        ]
        try:
            if len(kept) < len(layers):
                self.model.encoder.layers = nn.ModuleList(
                    layers[index] for index in kept
                )
            with warnings.catch_warnings():
                # WavLM pairs a bool padding mask with a float position
                # bias; torch warns but handles it right.
                warnings.filterwarnings(
                    "ignore", message="Support for mismatched key_padding_mask"
                )
                self.model.encoder(hidden, attention_mask=frame_mask)
        finally:
            self.model.encoder.layers = layers
            for handle in handles:
                handle.remove()
        for index in range(len(layers)):
            if index not in kept:
                stacked[:, index + 1] = stacked[:, index]
        if self.final_layer_norm and last not in kept:
            stacked[:, -1] = self.model.encoder.layer_norm(
                stacked[:, -1].clone()
            )
        return stacked

    def _layers_to_run(self, num_layers):
        """LayerDrop: the indices of the layers this forward pass runs.

        In training (not frozen), each layer is dropped with probability
        ``layerdrop``, for the whole batch, as fairseq and HF do; at least
        one layer runs, and WavLM's first layer always does (it computes
        the relative position bias the others reuse).
        """
        if not (self.layerdrop and self.training and not self.freeze):
            return list(range(num_layers))
        drops = (torch.rand(num_layers) < self.layerdrop).tolist()
        if self.model.config.model_type == "wavlm" or all(drops):
            drops[0] = False
        return [index for index, dropped in enumerate(drops) if not dropped]

    def _keep_first_layers(self, num_layers):
        """Removes the transformer layers after the first ``num_layers``."""
        total = len(self.model.encoder.layers)
        if not 1 <= num_layers <= total:
            raise ValueError(
                f"num_layers must be in [1, {total}] for this model, "
                f"got {num_layers}"
            )
        self.model.encoder.layers = self.model.encoder.layers[:num_layers]
        self.model.config.num_hidden_layers = num_layers

    def _freeze_unused_parameters(self):
        """Freezes parameters that never reach the output.

        DDP then needs no ``find_unused_parameters``: the SpecAugment
        embedding when masking is off, and the final encoder LayerNorm of
        stable-layer-norm models unless ``final_layer_norm`` (otherwise it
        only feeds ``last_hidden_state``).
        """
        spec_embed = getattr(self.model, "masked_spec_embed", None)
        if spec_embed is not None and not self.apply_spec_augment:
            spec_embed.requires_grad_(False)
        stable = getattr(self.model.config, "do_stable_layer_norm", False)
        if stable and not self.final_layer_norm:
            self.model.encoder.layer_norm.requires_grad_(False)
