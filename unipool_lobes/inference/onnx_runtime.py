"""onnxruntime in place of PyTorch for a model folder's embeddings.

``OnnxEmbedder`` runs a graph of ``unipool-sv export-onnx``
(:mod:`unipool_lobes.inference.onnx_export`): padded waveforms and relative
lengths in, ``[B, E]`` embeddings out. ``OnnxRuntimeMixin`` (a base of
``SpeakerVerifier``) adds ``use_onnx``: from then on ``_embed``, the one
place where a padded batch becomes embeddings, runs the graph after its
usual input checks, so batching (``encode_files``), long-audio windows,
silence removal and galleries, all built on ``_embed``, work unchanged.
The graph is accepted only if its record (``onnx.json``) matches it and
the folder: the SHA-256 of the graph, of the checkpoint files it came from
and of the loaded weights. Layer weights (UniPool's layer significance)
are not in the graph: ask them of the PyTorch runtime.

The session uses ``ORT_ENABLE_ALL`` graph optimisations and, by default,
as many intra-op threads as PyTorch (``torch.get_num_threads()``).

Authors
 * unipool-sv developers 2026
"""

import json
import pathlib

import torch

from unipool_lobes.inference.onnx_export import (
    ONNX_FILE,
    ONNX_INFO,
    SOURCE_CHECKPOINTS,
    weights_digest,
)
from unipool_lobes.training.checkpoint_files import file_checksum

__all__ = ["OnnxEmbedder", "OnnxMismatchError", "OnnxRuntimeMixin"]

# The graph's CNN needs two frames: shorter batches are zero-padded to this
# (exact: padding never changes an embedding). 720 samples give two frames
# of the wav2vec2-style CNN (400-sample receptive field, 320 stride).
_MIN_GRAPH_SAMPLES = 720


class OnnxMismatchError(ValueError):
    """An ONNX graph whose record does not match it or its model folder."""


class OnnxEmbedder:
    """An onnxruntime session of an exported embedding graph.

    Arguments
    ---------
    path : str or os.PathLike
        The ``model.onnx`` file.
    threads : int, optional
        Intra-op threads (default ``torch.get_num_threads()``).
    device : str
        ``"cpu"``, or ``"cuda"`` for onnxruntime's CUDA provider when it is
        installed (the CPU provider otherwise).

    Example
    -------
    >>> try:
    ...     OnnxEmbedder(getfixture("tmp_path") / "model.onnx")
    ... except FileNotFoundError as error:
    ...     print(str(error).endswith("model.onnx not found"))
    True
    """

    def __init__(self, path, threads=None, device="cpu"):
        import onnxruntime

        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        available = onnxruntime.get_available_providers()
        if str(device).startswith("cuda") and (
            "CUDAExecutionProvider" in available
        ):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=providers
            )
        except Exception as error:  # onnxruntime's own exception classes
            raise OnnxMismatchError(
                f"{path}: onnxruntime cannot load it ({error})"
            ) from error
        self.path = path

    def __call__(self, wavs, wav_lens):
        """Embeds a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, S]`` waveforms, zero-padded on the right.
        wav_lens : torch.Tensor
            ``[B]`` relative lengths in (0, 1].

        Returns
        -------
        torch.Tensor
            ``[B, E]`` float32 CPU embeddings, not normalised.

        Raises
        ------
        ValueError
            For badly shaped input or lengths outside (0, 1].
        """
        wavs = torch.as_tensor(wavs).detach().float().cpu()
        wav_lens = torch.as_tensor(wav_lens).detach().float().cpu()
        if wavs.dim() != 2 or wav_lens.shape != (wavs.shape[0],):
            raise ValueError(
                f"wavs must be [batch, samples] and wav_lens [batch], got "
                f"{tuple(wavs.shape)} and {tuple(wav_lens.shape)}"
            )
        if bool(((wav_lens <= 0) | (wav_lens > 1 + 1e-6)).any()):
            raise ValueError(
                f"wav_lens must be relative lengths in (0, 1], got {wav_lens}"
            )
        num_samples = wavs.shape[1]
        if num_samples < _MIN_GRAPH_SAMPLES:
            counts = torch.round(wav_lens.double() * num_samples)
            wavs = torch.nn.functional.pad(
                wavs, (0, _MIN_GRAPH_SAMPLES - num_samples)
            )
            wav_lens = (counts / _MIN_GRAPH_SAMPLES).float()
        (embeddings,) = self.session.run(
            ["embeddings"],
            {
                "wavs": wavs.contiguous().numpy(),
                "wav_lens": wav_lens.contiguous().numpy(),
            },
        )
        return torch.from_numpy(embeddings)


class OnnxRuntimeMixin:
    """``use_onnx``: a ``SpeakerVerifier`` whose ``_embed`` runs onnxruntime.

    Example
    -------
    >>> class Plain(OnnxRuntimeMixin):
    ...     pass
    >>> Plain().onnx_embedder is None
    True
    """

    # None: PyTorch runs the front-end and backend.
    onnx_embedder = None

    def use_onnx(self, path=None, threads=None):
        """Runs the embeddings with onnxruntime from now on.

        Arguments
        ---------
        path : str or os.PathLike, optional
            The graph (default the model folder's ``model.onnx``); its
            record ``onnx.json`` must be beside it.
        threads : int, optional
            Intra-op threads (default ``torch.get_num_threads()``).

        Returns
        -------
        OnnxRuntimeMixin
            self.

        Raises
        ------
        FileNotFoundError
            If the graph or its record is missing (the message says to run
            ``unipool-sv export-onnx``).
        OnnxMismatchError
            If the record does not match the graph, the folder's
            checkpoints or the loaded weights.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
        >>> from unipool_lobes.inference.speaker import SpeakerVerifier
        >>> from unipool_lobes.models.unipool.model import UniPool
        >>> verifier = SpeakerVerifier(
        ...     modules={
        ...         "front_end": MultiLayerSSL(
        ...             write_local_model(str(getfixture("tmp_path")))
        ...         ),
        ...         "embedding_model": UniPool(32, 2, conv_channels=8),
        ...     },
        ...     hparams={"savedir": str(getfixture("tmp_path"))},
        ... )
        >>> try:
        ...     verifier.use_onnx()
        ... except FileNotFoundError as error:
        ...     print(str(error).split(" not found")[1][:29])
        : run 'unipool-sv export-onnx
        """
        folder = getattr(self.hparams, "savedir", None)
        if path is None:
            if folder is None:
                raise FileNotFoundError(
                    "this model has no folder: pass the path of its ONNX graph"
                )
            path = pathlib.Path(folder) / ONNX_FILE
        path = pathlib.Path(path)
        model = folder if folder is not None else path.parent
        hint = f"run 'unipool-sv export-onnx --model {model}' first"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {hint}")
        record_path = path.with_name(ONNX_INFO)
        if not record_path.is_file():
            raise FileNotFoundError(f"{record_path} not found: {hint}")
        self._check_onnx_record(path, record_path, folder, hint)
        self.onnx_embedder = OnnxEmbedder(path, threads, str(self.device))
        return self

    def use_torch(self):
        """Runs the embeddings with PyTorch again (undoes ``use_onnx``).

        Returns
        -------
        OnnxRuntimeMixin
            self.

        Example
        -------
        >>> class Plain(OnnxRuntimeMixin):
        ...     pass
        >>> Plain().use_torch().onnx_embedder is None
        True
        """
        self.onnx_embedder = None
        return self

    def _embed_onnx(self, wavs, wav_lens, keep_layer_weights=False):
        """``_embed``'s graph call: ``[B, 1, E]`` on the model's device."""
        if keep_layer_weights:
            raise ValueError(
                "layer weights are not in the ONNX graph: use the torch "
                "runtime for them (or --no-plots)"
            )
        embeddings = self.onnx_embedder(wavs, wav_lens)
        return embeddings.unsqueeze(1).to(self.device)

    def _check_onnx_record(self, path, record_path, folder, hint):
        """Refuses a record that does not match the graph and the model."""
        again = hint.replace("' first", " --overwrite' again")
        try:
            record = json.loads(record_path.read_text("utf-8"))
            expected_graph = record["sha256"]
            sources = dict(record["sources"])
            weights = record["weights_sha256"]
        except (ValueError, KeyError, TypeError) as error:
            raise OnnxMismatchError(
                f"{record_path}: not a valid ONNX record ({error}); {hint}"
            ) from None
        if file_checksum(path) != expected_graph:
            raise OnnxMismatchError(
                f"{path} differs from the graph {record_path} records "
                f"(SHA-256); {again}"
            )
        if folder is not None:
            folder = pathlib.Path(folder)
            present = {
                name for name in SOURCE_CHECKPOINTS if (folder / name).is_file()
            }
            if present != set(sources):
                raise OnnxMismatchError(
                    f"{record_path} was exported from the checkpoints "
                    f"{sorted(sources)} but {folder} holds {sorted(present)}"
                    f"; {again}"
                )
            for name, digest in sources.items():
                if file_checksum(folder / name) != digest:
                    raise OnnxMismatchError(
                        f"{folder / name} differs from the checkpoint "
                        f"{path.name} was exported from ({record_path}); "
                        f"{again}"
                    )
        if weights_digest(self) != weights:
            raise OnnxMismatchError(
                f"the loaded model's weights differ from those {path} was "
                f"exported from ({record_path}); "
                f"{again}"
            )
