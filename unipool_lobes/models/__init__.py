"""Speaker-embedding models: the backends over multi-layer features.

UniPool (the :mod:`unipool_lobes.models.unipool` subpackage: the model,
its blocks, its attentive statistics pooling and the converter of the
authors' checkpoints), LAP, MHFA, the layer-weighted ECAPA-TDNN, layer mean
pooling, the baselines' ECAPA-TDNN and SincNet, and the AAM classifier head.
Every backend takes ``(hidden_states, lengths)`` and returns ``[B, 1, E]``.

SpeechBrain home: ``speechbrain/lobes/models/`` (one file per model).
"""
