"""Installs the UniPool speaker-verification lobes and data preparation."""

from setuptools import find_packages, setup

setup(
    name="unipool-sv",
    version="0.1.0",
    description=(
        "SpeechBrain recipes for UniPool: pooling multi-layer features of "
        "pretrained speech models for speaker verification"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["unipool_lobes*", "data_prep*"]),
    install_requires=[
        "speechbrain>=1.1.1",
        # torchaudio stops at 2.11 and must load beside torch: 2.14.1 is the
        # newest torch known to work with it.
        "torch>=2.11,<=2.14.1",
        "torchaudio>=2.11",
        "transformers>=4.40",
        "hyperpyyaml>=1.2",
        "soundfile>=0.12.1",
        "numpy",
        "matplotlib",
        "tqdm",
        # The QMF calibration's logistic regression (liblinear), as the LAP
        # authors fit it.
        "scikit-learn>=1.3",
        # data_prep.mini_corpus (resampling) and scikit-learn.
        "scipy",
    ],
    extras_require={
        # Deployment: ONNX export and runtime, the offline silero VAD (its
        # wheel ships the weights) and galleries in safetensors.
        "deploy": [
            "onnx>=1.16",
            "onnxruntime>=1.17",
            "onnxscript>=0.1",
            "silero-vad>=5.1",
            "safetensors>=0.4",
        ],
        "dev": [
            "pytest>=7.4",
            # A test that hangs fails at the timeout of pyproject.toml
            # instead of holding CI for its whole budget.
            "pytest-timeout>=2.2",
            # Two workers, one test file each (module fixtures stay shared
            # within a file): the suite's recipe runs are single-threaded.
            "pytest-xdist>=3.5",
            "ruff>=0.12",
            "yamllint>=1.35",
        ],
    },
    entry_points={
        "console_scripts": ["unipool-sv=unipool_lobes.inference.cli:main"],
    },
)
