"""Training machinery every recipe needs and SpeechBrain lacks or breaks.

The atomic checkpointer, learning-rate schedulers, rank-0 decisions and the
process group, the process-group batch norm, the checks a run makes before
it starts, seeding, ``init_from``.

SpeechBrain home: ``speechbrain/utils/`` (checkpoints, distributed,
schedulers) and ``speechbrain/core.py`` (see ARCHITECTURE.md).
"""
