"""Small shared utilities: atomic file writing, folder locks.

SpeechBrain home: ``speechbrain/utils/``.
"""
