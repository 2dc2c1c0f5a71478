"""ONNX export (``unipool-sv export-onnx``) and the onnxruntime runtime.

The wav2vec2 model is the session's ``trained_vctk_run`` (a tiny GroupNorm
wav2vec2 and a UniPool backend), exported once through the command line;
HuBERT and WavLM are tiny local models with a UniPool backend built here.
Each graph is compared with eager PyTorch on padded batches of other sizes
and lengths than its trace's.
"""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from data_prep.common import read_csv
from unipool_lobes.frontends.ssl import MultiLayerSSL
from unipool_lobes.inference.audio import pad_waveforms
from unipool_lobes.inference.cli import main
from unipool_lobes.inference.export import export_pretrained
from unipool_lobes.inference.onnx_export import (
    ONNX_FILE,
    ONNX_INFO,
    export_onnx,
)
from unipool_lobes.inference.onnx_graph import EmbeddingGraph
from unipool_lobes.inference.onnx_runtime import OnnxEmbedder, OnnxMismatchError
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.models.mean_pool import LayerMeanPool
from unipool_lobes.models.mhfa import MHFA
from unipool_lobes.models.unipool.model import UniPool
from unipool_lobes.training.checkpoint_files import file_checksum, file_record

TOLERANCE = 1e-4


def _normalised_difference(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).abs().max())


@pytest.fixture(scope="module")
def run(trained_vctk_run, tmp_path_factory):
    """A copy of the trained run (the CLI writes into it)."""
    copy = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(trained_vctk_run, copy, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def folder(run, tmp_path_factory):
    """The run exported, then ``unipool-sv export-onnx`` on it."""
    out = export_pretrained(run, tmp_path_factory.mktemp("onnx_m") / "m")
    assert main(["export-onnx", "--model", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def wavs(run):
    """The run's 16 kHz test files (1-3 s, all lengths different)."""
    return [row["wav"] for row in read_csv(run / "data" / "test.csv")]


def test_export_writes_a_checked_graph_and_its_record(folder):
    """model.onnx has dynamic batch and length axes; onnx.json records it.

    Catches a graph traced with fixed shapes, a record that does not hash
    the graph or its checkpoints, and a check that was not run.
    """
    graph = onnx.load(str(folder / ONNX_FILE))
    inputs = {item.name: item for item in graph.graph.input}
    assert sorted(inputs) == ["wav_lens", "wavs"]
    dims = list(inputs["wavs"].type.tensor_type.shape.dim)
    assert all(d.dim_param and not d.dim_value for d in dims)
    (output,) = graph.graph.output
    assert output.name == "embeddings"
    record = json.loads((folder / ONNX_INFO).read_text())
    assert record["exporter"] == "torchscript"  # the first of "auto"
    assert record["sha256"] == file_checksum(folder / ONNX_FILE)
    assert record["sources"]["embedding_model.ckpt"] == file_checksum(
        folder / "embedding_model.ckpt"
    )
    assert record["embedding_size"] == 192
    assert record["check"]["max_abs_error"] <= TOLERANCE
    assert record["check"]["max_batch_error"] <= TOLERANCE
    assert {"torch", "onnx", "onnxruntime"} <= set(record["versions"])


def test_onnx_runtime_matches_pytorch_in_padded_batches(folder, wavs):
    """encode_files with use_onnx gives PyTorch's embeddings, batch == alone.

    Real files of different lengths, padded together by encode_files:
    catches a graph that lets padding into the group norm or attention
    (the batched rows would differ from alone) or that baked the trace's
    lengths in.
    """
    verifier = SpeakerVerifier.from_hparams(folder, run_opts={"device": "cpu"})
    eager = verifier.encode_files(wavs, batch_size=8, progress=False)
    verifier.use_onnx()
    batched = verifier.encode_files(wavs, batch_size=8, progress=False)
    alone = verifier.encode_files(wavs, batch_size=1, progress=False)
    assert batched.shape == eager.shape
    assert _normalised_difference(batched, eager) <= TOLERANCE
    assert _normalised_difference(batched, alone) <= TOLERANCE
    with pytest.raises(ValueError, match="layer weights are not in the ONNX"):
        verifier.encode_files(wavs[:2], return_layer_weights=True)
    verifier.use_torch()
    restored = verifier.encode_files(wavs, batch_size=8, progress=False)
    assert torch.equal(restored, eager)


def test_cli_runtime_onnx_for_verify_embed_and_score(
    folder, run, wavs, tmp_path, capsys
):
    """verify, embed and score with --runtime onnx give torch's results.

    Catches a --runtime onnx that breaks a command or changes its
    results (that the option reaches each command's model loading is
    shown by test_missing_or_mismatched_graph_exits_2).
    """
    model = ["--model", str(folder), "--no-progress"]
    scores = {}
    for runtime in ("torch", "onnx"):
        assert (
            main(["verify", wavs[0], wavs[1], *model, "--runtime", runtime])
            == 0
        )
        line = capsys.readouterr().out.splitlines()[0]
        scores[runtime] = float(line.split()[1])
    assert abs(scores["onnx"] - scores["torch"]) < 1e-4

    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{path}\n" for path in wavs[:6]))
    tables = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.npy"
        argv = ["embed", "--list", str(listing), "--out", str(out), *model]
        assert main([*argv, "--runtime", runtime]) == 0
        tables[runtime] = np.load(out)
    assert _normalised_difference(tables["onnx"], tables["torch"]) <= TOLERANCE

    results = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"score_{runtime}"
        argv = [
            "score",
            "--trials",
            str(run / "data" / "test_trials.csv"),
            "--manifest",
            str(run / "data" / "test.csv"),
            "--out",
            str(out),
            *model,
        ]
        assert main([*argv, "--runtime", runtime]) == 0
        results[runtime] = json.loads((out / "results.json").read_text())
    assert results["onnx"]["EER"] == pytest.approx(results["torch"]["EER"])
    # UniPool's layer weights are not in the graph: no plot, no failure.
    assert (tmp_path / "score_torch" / "layer_significance.png").is_file()


def test_missing_or_mismatched_graph_exits_2(
    folder, run, wavs, tmp_path, capsys
):
    """No model.onnx, a changed graph or a changed checkpoint: exit code 2.

    Catches a runtime that silently uses a graph of other weights (the
    checkpoint is replaced by a consistent, re-recorded one, so only the
    ONNX record can tell) or a missing graph reported as a traceback.
    """
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    argv = ["verify", wavs[0], wavs[1], "--model", str(copy), "--runtime"]

    (copy / ONNX_FILE).rename(tmp_path / ONNX_FILE)
    assert main([*argv, "onnx"]) == 2
    message = capsys.readouterr().err
    assert f"{copy / ONNX_FILE} not found" in message
    assert "export-onnx" in message
    assert main([*argv, "torch"]) == 0
    listing = tmp_path / "files.txt"
    listing.write_text(f"{wavs[0]}\n")
    embed = ["embed", "--list", str(listing), "--out", str(tmp_path / "e.npy")]
    score = ["score", "--trials", str(run / "data" / "test_trials.csv")]
    score += ["--manifest", str(run / "data" / "test.csv")]
    for command in (embed, score):  # --runtime reaches every command
        assert main([*command, "--model", str(copy), "--runtime", "onnx"]) == 2
        assert "export-onnx" in capsys.readouterr().err
    capsys.readouterr()

    data = bytearray((tmp_path / ONNX_FILE).read_bytes())
    data[-1] ^= 1  # the last weight's last byte
    (copy / ONNX_FILE).write_bytes(bytes(data))
    assert main([*argv, "onnx"]) == 2
    assert "differs from the graph" in capsys.readouterr().err

    shutil.copy(tmp_path / ONNX_FILE, copy / ONNX_FILE)
    checkpoint = copy / "embedding_model.ckpt"
    state = torch.load(checkpoint, map_location="cpu")
    key = sorted(key for key in state if state[key].is_floating_point())[0]
    state[key] = state[key] + 0.01
    torch.save(state, checkpoint)
    info = json.loads((copy / "export.json").read_text())
    info["files"]["embedding_model.ckpt"] = file_record(checkpoint)
    (copy / "export.json").write_text(json.dumps(info))
    assert main([*argv, "onnx"]) == 2
    message = capsys.readouterr().err
    assert "embedding_model.ckpt differs from the checkpoint" in message
    assert main([*argv, "torch"]) == 0
    assert main(["export-onnx", "--model", str(copy)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("family", "do_normalize"), [("hubert", True), ("wavlm", False)]
)
def test_hubert_and_wavlm_export(
    family, do_normalize, local_ssl_model, tmp_path
):
    """HuBERT and WavLM (GroupNorm CNN) + UniPool: graph == PyTorch.

    The export's own check runs (it refuses on error); this test checks
    again on its own padded batch and that each row equals its utterance
    alone. Catches WavLM's relative position bias or the waveform
    normalisation of do_normalize models seeing the padding. (The dynamo
    exporter, ``auto``'s fallback, gave a passing WavLM graph too, in 47 s
    against 3 s: too slow for the suite; its choice is tested below.)
    """
    exporter = "torchscript"
    source = local_ssl_model(family, do_normalize=do_normalize)
    verifier = SpeakerVerifier(
        modules={
            "front_end": MultiLayerSSL(source),
            "embedding_model": UniPool(32, 2, conv_channels=8),
        },
        hparams={"savedir": str(tmp_path)},
        run_opts={"device": "cpu"},
    )
    record = export_onnx(tmp_path, verifier=verifier)
    assert record["exporter"] == exporter
    assert record["check"]["max_abs_error"] <= TOLERANCE
    assert record["sources"] == {}
    generator = torch.Generator().manual_seed(5)
    signals = [torch.randn(n, generator=generator) for n in (9000, 23456, 4100)]
    batch, lens = pad_waveforms(signals)
    embedder = OnnxEmbedder(tmp_path / ONNX_FILE)
    exported = embedder(batch, lens)
    eager = verifier.encode_batch(batch, lens)[:, 0]
    assert _normalised_difference(exported, eager) <= TOLERANCE
    for row, signal in enumerate(signals):
        alone = embedder(signal[None], torch.ones(1))
        assert _normalised_difference(exported[row], alone[0]) <= TOLERANCE
    verifier.use_onnx()
    with torch.no_grad():
        modules = verifier.mods.embedding_model
        modules.embedding.bias.add_(1.0)
    with pytest.raises(OnnxMismatchError, match="weights differ"):
        verifier.use_onnx()


@pytest.mark.parametrize("backend", ["mhfa", "mean_pool"])
def test_exportable_path_matches_eager_for_other_backends(
    backend, local_ssl_model
):
    """EmbeddingGraph's branch-free forward == the eager model (no export).

    The graph's forward always takes the masked branches; catches a
    backend whose masked path differs from its unmasked one (all-full
    batches) or from the eager front-end.
    """
    ssl = MultiLayerSSL(local_ssl_model("wavlm")).eval()
    layers = ssl.num_hidden_states
    model = {
        "mhfa": lambda: MHFA(32, layers, num_heads=2, compression_dim=8),
        "mean_pool": lambda: LayerMeanPool(32, embedding_size=8),
    }[backend]().eval()
    graph = EmbeddingGraph(ssl, model)
    generator = torch.Generator().manual_seed(2)
    for lengths in ((8000, 8000), (8000, 5000, 1234)):
        signals = [torch.randn(n, generator=generator) for n in lengths]
        batch, lens = pad_waveforms(signals)
        with torch.no_grad():
            eager = model(*ssl(batch, lens))[:, 0]
            assert _normalised_difference(graph(batch, lens), eager) <= 1e-5


def test_auto_falls_back_to_the_dynamo_exporter(tmp_path, monkeypatch):
    """``auto`` tries the TorchScript exporter, then the dynamo one, and a
    double failure names both (fails if the order or the report changes).
    The exporters are stand-ins: the real ones are exercised above."""
    from unipool_lobes.inference import onnx_export

    calls = []

    def _fails(graph, wavs, wav_lens, path, opset):
        calls.append("torchscript")
        raise RuntimeError("no TorchScript today")

    def _writes(graph, wavs, wav_lens, path, opset):
        calls.append("dynamo")
        path.write_bytes(b"graph")

    monkeypatch.setitem(onnx_export._EXPORT_CALLS, "torchscript", _fails)
    monkeypatch.setitem(onnx_export._EXPORT_CALLS, "dynamo", _writes)
    graph = torch.nn.Identity()
    used = onnx_export._export_graph(graph, 16000, tmp_path / "g", 18, "auto")
    assert used == "dynamo" and calls == ["torchscript", "dynamo"]
    monkeypatch.setitem(onnx_export._EXPORT_CALLS, "dynamo", _fails)
    with pytest.raises(onnx_export.OnnxExportError) as failure:
        onnx_export._export_graph(graph, 16000, tmp_path / "h", 18, "auto")
    assert str(failure.value).count("no TorchScript today") == 2
    assert "torchscript exporter" in str(failure.value)
    assert "dynamo exporter" in str(failure.value)
    with pytest.raises(ValueError, match="exporter must be one of"):
        onnx_export.export_onnx(tmp_path, exporter="fast")
