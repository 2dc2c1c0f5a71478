"""Data loading: manifests, training crops, augmentation, batching.

SpeechBrain home: ``speechbrain/dataio/`` and ``speechbrain/augment/``.
"""
