"""Front-ends: waveforms to the features a backend reads.

``ssl`` (every hidden state of an HF wav2vec2 / HuBERT / WavLM model, with
relative lengths), ``fbank``, ``mfcc``, ``waveform``; ``local_models``
writes small local HF model folders (tests, demo).

SpeechBrain home: ``speechbrain/lobes/features.py`` and
``speechbrain/integrations/huggingface/``.
"""
