"""UniPool, readable as one unit.

``model`` (the :class:`UniPool` lobe), ``blocks`` (its per-layer blocks),
``pooling`` (attentive statistics pooling, also LAP's), ``authors`` (the
converter of the authors' checkpoints).

SpeechBrain home: ``speechbrain/lobes/models/UniPool.py`` (one file there).
"""

from unipool_lobes.models.unipool.model import UniPool

__all__ = ["UniPool"]
