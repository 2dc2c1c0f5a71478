"""Every baseline and backend yaml of the VCTK recipe, end to end.

Each yaml runs the recipe's ``train.py`` in a subprocess on a generated
mini VCTK corpus, with a tiny local wav2vec2 and tiny layer sizes given as
command-line overrides: a few steps, one validation (EER picks the
checkpoint), then the test of the best checkpoint. The corpus is prepared
once for the module (``--prep_folder`` points every run at it).
"""

import json
import os
import pathlib
import sys

import processes
import pytest
import torch
from transformers import AutoModel

from data_prep.mini_corpus import write_mini_vctk
from data_prep.trials import read_trials
from data_prep.vctk import prepare_vctk
from unipool_lobes.frontends.local_models import write_local_model

pytestmark = pytest.mark.slow

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
SEED = 42  # the yamls' seed: the shared preparation is then reused

# The tiny model: hidden size 32, 2 transformer layers (3 hidden states).
TINY_SSL = {"ssl_hidden_size": 32}
ALL_LAYERS = {**TINY_SSL, "ssl_num_layers": 2}
# Per yaml: its model_name and the overrides that shrink it.
SYSTEMS = {
    "xvector_vctk.yaml": (
        "xvector",
        {"tdnn_channels": "[32,32,32,32,64]", "emb_dim": 32},
    ),
    "ecapa_vctk.yaml": (
        "ecapa_tdnn",
        {
            "channels": 16,
            "mfa_channels": 48,
            "se_channels": 8,
            "attention_channels": 8,
            "emb_dim": 12,
            # Two steps make one cycle (step_size_up = steps // 2).
            "lr_cycles": 1,
        },
    ),
    "sincnet_vctk.yaml": (
        "sincnet",
        {
            "window_ms": 100,
            "eval_shift_ms": 50,
            "sinc_channels": 8,
            "sinc_kernel_size": 31,
            "conv_channels": "[4,4]",
            "emb_dim": 16,
        },
    ),
    "explorewv2_vctk.yaml": (
        "explorewv2",
        # 4 steps, validation every step: the transformer is frozen for
        # 4 * 10000 // 13000 = 3, so only step 4 is validated.
        {
            **TINY_SSL,
            "number_of_steps": 4,
            "valid_interval_steps": 1,
            "zero_shot_eval": True,
        },
    ),
    "finetunewv2_vctk.yaml": ("finetunewv2", dict(TINY_SSL)),
    "wavlm_ecapa_vctk.yaml": (
        "wavlm_ecapa",
        {
            **ALL_LAYERS,
            "channels": "[16,16,16,16,48]",
            "attention_channels": 8,
            "emb_dim": 12,
        },
    ),
    "mhfa_vctk.yaml": (
        "mhfa",
        {**ALL_LAYERS, "num_heads": 4, "compression_dim": 8, "emb_dim": 12},
    ),
    "lap_vctk.yaml": (
        "lap",
        {**ALL_LAYERS, "lap_channels": 16, "num_heads": 4, "emb_dim": 12},
    ),
}


@pytest.fixture(scope="module")
def shared_inputs(tmp_path_factory):
    """A mini VCTK corpus, prepared once, and a tiny local wav2vec2."""
    root = tmp_path_factory.mktemp("baseline_recipes")
    corpus = write_mini_vctk(
        str(root / "VCTK-mini"), n_speakers=24, utterances_per_speaker=6, seed=1
    )
    model = write_local_model(
        str(root / "tiny-wav2vec2"), family="wav2vec2", size="tiny", seed=1
    )
    prepared = str(root / "prepared")
    prepare_vctk(corpus, prepared, split_source="generate", seed=SEED)
    return {"corpus": corpus, "model": model, "prepared": prepared}


@pytest.fixture(scope="module")
def trained(shared_inputs, tmp_path_factory):
    """``trained(yaml_name)`` runs that yaml once and returns its folder."""
    runs = {}

    def run(yaml_name):
        if yaml_name in runs:
            return runs[yaml_name]
        out = tmp_path_factory.mktemp(yaml_name.replace(".yaml", ""))
        _, extra = SYSTEMS[yaml_name]
        overrides = {
            "data_folder": shared_inputs["corpus"],
            "prep_folder": shared_inputs["prepared"],
            "split_source": "generate",
            "output_folder": str(out),
            "out_n_neurons": 16,
            "number_of_steps": 2,
            "valid_interval_steps": 2,
            "batch_size": 4,
            "eval_batch_size": 8,
            "num_workers": 0,
            "device": "cpu",
            **extra,
        }
        if "ssl_hidden_size" in extra:
            overrides["ssl_source"] = shared_inputs["model"]
            overrides["ssl_cache"] = str(out / "ssl_cache")
        if yaml_name != "sincnet_vctk.yaml":
            overrides["crop_seconds"] = 1.0
        if yaml_name == "xvector_vctk.yaml":
            del overrides["eval_batch_size"]  # keep the yaml's 1
        command = [
            sys.executable,
            "train.py",
            f"hparams/{yaml_name}",
            *(f"--{key}={value}" for key, value in overrides.items()),
        ]
        # One thread per run: the suite shares a few cores.
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        processes.run(command, 300, check=True, cwd=RECIPE, env=env)
        runs[yaml_name] = out
        return out

    return run


def _checkpoint(out):
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1, "only the best-EER checkpoint is kept"
    return checkpoints[0]


@pytest.mark.parametrize("yaml_name", sorted(SYSTEMS))
def test_trains_validates_and_tests(trained, shared_inputs, yaml_name):
    """Training, validation EER, the best checkpoint and its test results."""
    out = trained(yaml_name)
    model_name, _ = SYSTEMS[yaml_name]
    log = (out / "train_log.txt").read_text()
    trained_log = [line for line in log.splitlines() if "zero-shot" not in line]
    assert sum("valid EER" in line for line in trained_log) == 1, log
    assert "test EER" in log, log
    assert "EER" in (_checkpoint(out) / "CKPT.yaml").read_text()

    results = json.loads((out / "results.json").read_text())
    test_trials = os.path.join(shared_inputs["prepared"], "test_trials.csv")
    trials = read_trials(test_trials)
    assert results["model"] == model_name and results["corpus"] == "VCTK"
    assert results["n_trials"] == len(trials["label"])
    assert 0.0 <= results["EER"] <= 1.0
    scores = (out / "scores.txt").read_text().splitlines()
    assert len(scores) == len(trials["label"])
    assert all(
        torch.isfinite(torch.tensor(float(line.split()[3]))) for line in scores
    )


def _weights(folder):
    model = AutoModel.from_pretrained(folder)
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def test_explorewv2_unfreezes_its_first_layer_after_the_frozen_steps(
    trained, shared_inputs
):
    """3 of 4 steps frozen (checkpointed count), then the layer trains;
    neither validation nor a kept checkpoint before that (before: steps 1
    to 3 were validated and could be the tested checkpoint)."""
    out = trained("explorewv2_vctk.yaml")
    checkpoint = _checkpoint(out)
    meta = (checkpoint / "CKPT.yaml").read_text()
    assert "step: 4" in meta and "EER" in meta
    log = (out / "train_log.txt").read_text()
    for step in (1, 2, 3):
        assert f"step: {step}, lr" in log
        assert f"step: {step}, lr" in log.split("validation: none")[step - 1]
    # zero_shot_eval: both trial lists scored before any step (before: no
    # such option).
    zero_shot = json.loads((out / "zero_shot.json").read_text())
    assert set(zero_shot) == {"valid", "test"}
    assert all(0 <= r["EER"] <= 100 for r in zero_shot.values())
    assert log.index("zero-shot") < log.index("step: 1, lr")
    front_end = torch.load(checkpoint / "front_end.ckpt", map_location="cpu")
    initial = _weights(shared_inputs["model"])
    assert int(front_end["training_forwards"]) == 4
    assert not any(k.startswith("model.encoder.layers.1.") for k in front_end)
    layer = "model.encoder.layers.0.attention.q_proj.weight"
    assert not torch.equal(front_end[layer], initial[layer])
    cnn = "model.feature_extractor.conv_layers.0.conv.weight"
    assert torch.equal(front_end[cnn], initial[cnn])
    # Four steps use the rates of schedule steps 0 to 3.
    schedule = torch.load(checkpoint / "lr_scheduler.ckpt", weights_only=False)
    assert schedule["last_epoch"] == 3


def test_finetunewv2_fine_tunes_everything_from_a_cls_frame(
    trained, shared_inputs
):
    """The authors' FinetuneWV2: the CNN trains too (before: frozen), the
    embedding is the CLS frame's output (before: a mean of the frames),
    LayerDrop 0.05 and masking with no minimum span count; tri-stage."""
    out = trained("finetunewv2_vctk.yaml")
    checkpoint = _checkpoint(out)
    front_end = torch.load(checkpoint / "front_end.ckpt", map_location="cpu")
    initial = _weights(shared_inputs["model"])
    last = "model.encoder.layers.1.feed_forward.output_dense.weight"
    assert not torch.equal(front_end[last], initial[last])
    cnn = "model.feature_extractor.conv_layers.0.conv.weight"
    assert not torch.equal(front_end[cnn], initial[cnn])
    hparams = (out / "hyperparams.yaml").read_text()
    for setting in (
        "cls_frame: true",
        "pooling: cls",
        "layerdrop: 0.05",
        "mask_time_min_masks: 0",
    ):
        assert setting in hparams.lower(), setting
    # Two steps use the rates of schedule steps 0 and 1: the exponential
    # decay from the peak 5e-5 is half-way to 5e-6 at the second one.
    schedule = torch.load(checkpoint / "lr_scheduler.ckpt", weights_only=False)
    assert schedule["last_epoch"] == 1
    assert schedule["_last_lr"] == pytest.approx([(5e-5 * 5e-6) ** 0.5])


def test_ecapa_follows_its_cyclic_schedule(trained):
    """One triangular cycle over two steps: back at the base lr; the
    authors' two weight decays."""
    out = trained("ecapa_vctk.yaml")
    schedule = torch.load(
        _checkpoint(out) / "lr_scheduler.ckpt", weights_only=False
    )
    assert schedule["last_epoch"] == 2
    # Two groups (before: one): the encoder and the AAM head.
    assert schedule["_last_lr"] == pytest.approx([1e-8, 1e-8])
    assert "lr: 1.00e-08" in (out / "train_log.txt").read_text()
    optimizer = torch.load(_checkpoint(out) / "optimizer.ckpt")
    decays = [group["weight_decay"] for group in optimizer["param_groups"]]
    assert decays == pytest.approx([2e-5, 2e-4])
