"""Every baseline and backend yaml of the LibriSpeech and VoxCeleb recipes.

Each of these yamls is the VCTK yaml of its system with the corpus part
(data preparation, corpus name, speaker count, evaluation batch) of the
corpus's UniPool yaml; ``test_corpus_yaml_is_the_vctk_system_on_the_corpus``
checks exactly that, key by key. The LibriSpeech and vox1 yamls then run
the recipe's ``train.py`` end to end in a subprocess (a few steps, one
validation, the test of the best checkpoint) on generated mini corpora, with
the tiny sizes of ``tests/test_baseline_recipes.py``; each corpus is
prepared once for the module (``--prep_folder``). The vox2 yamls differ from
the vox1 ones in their data block only: each is loaded, prepares its setting
and runs one training and one embedding batch in-process, which keeps the
suite's time in check.

Authors
 * unipool-sv developers 2026
"""

import json
import os
import pathlib
import re
import sys

import processes
import pytest
import soundfile
import torch
from hyperpyyaml import load_hyperpyyaml
from mini_voxceleb_setup import GROUPS, TRIALS_PER_CLASS, write_corpus_and_lists
from test_baseline_recipes import SYSTEMS

from data_prep.common import options_path, read_csv
from data_prep.librispeech import prepare_librispeech
from data_prep.mini_corpus import write_mini_librispeech
from data_prep.trials import read_trials
from data_prep.voxceleb import prepare_voxceleb
from unipool_lobes.frontends.local_models import write_local_model

pytestmark = pytest.mark.slow

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"
SEED = 42  # the yamls' seed: the shared preparations are then reused
# yaml suffix -> recipe folder, the corpus's UniPool yaml, corpus_name.
CORPORA = {
    "librispeech": ("LibriSpeech", "unipool_librispeech.yaml", "LibriSpeech"),
    "vox1": ("VoxCeleb", "unipool_vox1.yaml", "VoxCeleb"),
    "vox2": ("VoxCeleb", "unipool_vox2.yaml", "VoxCeleb"),
}
# System name (yaml prefix) -> its VCTK yaml in SYSTEMS.
VCTK_YAMLS = {name.removesuffix("_vctk.yaml"): name for name in SYSTEMS}
# Systems that keep their own evaluation batch (see their yaml comments).
OWN_EVAL_BATCH = {"xvector", "sincnet"}
TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_]\w*):")

LIBRISPEECH_SPEAKERS = 8


def _yaml_path(system, suffix):
    folder = CORPORA[suffix][0]
    return RECIPES / folder / "hparams" / f"{system}_{suffix}.yaml"


def _entries(text):
    """Top-level entries of a yaml: key -> its lines, comments left out."""
    entries, key = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = TOP_LEVEL_KEY.match(line)
        if match:
            key = match[1]
            entries[key] = []
        entries[key].append(line)
    return {key: "\n".join(lines) for key, lines in entries.items()}


def _header_without_data(text):
    """The header comment with its ``# Data:`` paragraph left out."""
    header = text[: text.index("\nseed:")].splitlines()
    start = next(n for n, line in enumerate(header) if line[:7] == "# Data:")
    end = start + 1
    while header[end].startswith("#       "):
        end += 1
    return header[:start] + header[end:]


CORPUS_YAMLS = [
    (system, suffix) for suffix in CORPORA for system in sorted(VCTK_YAMLS)
]


@pytest.mark.parametrize(
    ("system", "suffix"),
    CORPUS_YAMLS,
    ids=[f"{s}_{c}" for s, c in CORPUS_YAMLS],
)
def test_corpus_yaml_is_the_vctk_system_on_the_corpus(system, suffix):
    """The model part is the VCTK yaml's, the data part the UniPool one's."""
    folder, unipool_name, _ = CORPORA[suffix]
    text = _yaml_path(system, suffix).read_text(encoding="utf-8")
    vctk_text = (RECIPES / "VCTK/hparams" / VCTK_YAMLS[system]).read_text()
    corpus, vctk = _entries(text), _entries(vctk_text)
    unipool = _entries(
        (RECIPES / folder / "hparams" / unipool_name).read_text()
    )
    unipool_vctk = _entries(
        (RECIPES / "VCTK/hparams/unipool_vctk.yaml").read_text()
    )
    # The corpus part: what differs between the two UniPool yamls.
    corpus_keys = {
        key
        for key in unipool.keys() | unipool_vctk.keys()
        if unipool.get(key) != unipool_vctk.get(key)
    }
    assert {"prepare_data", "out_n_neurons", "corpus_name"} <= corpus_keys
    model_keys = (corpus.keys() | vctk.keys()) - corpus_keys
    changed = [key for key in model_keys if corpus.get(key) != vctk.get(key)]
    assert not changed, f"model part differs from VCTK's: {changed}"
    data_keys = corpus_keys - {"output_folder", "eval_batch_size"}
    differ = [key for key in data_keys if corpus.get(key) != unipool.get(key)]
    assert not differ, f"corpus part differs from {unipool_name}: {differ}"
    assert corpus["output_folder"] == (
        f"output_folder: !ref results/{system}_{suffix}/<seed>"
    )
    own_batch = vctk if system in OWN_EVAL_BATCH else unipool
    assert corpus["eval_batch_size"] == own_batch["eval_batch_size"]
    assert _header_without_data(text) == _header_without_data(vctk_text)


def _command_line(settings):
    return [f"--{key}={value}" for key, value in settings.items()]


def _system_overrides(system, model, output_folder):
    """SYSTEMS' tiny sizes, as in the VCTK test, and the run length."""
    _, extra = SYSTEMS[VCTK_YAMLS[system]]
    settings = {
        "number_of_steps": 2,
        "valid_interval_steps": 2,
        "batch_size": 4,
        "eval_batch_size": 8,
        "num_workers": 0,
        **extra,
    }
    if "ssl_hidden_size" in extra:
        settings["ssl_source"] = model
        settings["ssl_cache"] = output_folder / "ssl_cache"
    if system != "sincnet":
        settings["crop_seconds"] = 1.0
    if system == "xvector":
        del settings["eval_batch_size"]  # keep the yaml's 1
    return settings


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny local wav2vec2 (hidden 32, 2 layers)."""
    root = tmp_path_factory.mktemp("corpus_baselines_model")
    return write_local_model(
        str(root / "tiny-wav2vec2"), family="wav2vec2", size="tiny", seed=1
    )


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory):
    """A mini LibriSpeech, prepared once: the data overrides of its runs."""
    root = tmp_path_factory.mktemp("corpus_baselines_librispeech")
    corpus = write_mini_librispeech(
        root / "LibriSpeech",
        n_speakers=LIBRISPEECH_SPEAKERS,
        chapters_per_speaker=2,
        utterances_per_chapter=2,
        duration_range=(1.0, 2.0),
        seed=2,
    )
    subsets = {
        "train_subsets": ["train-clean-100"],
        "valid_subsets": ["dev-clean"],
        "test_subsets": ["test-clean"],
    }
    prepared = str(root / "prepared")
    prepare_librispeech(
        corpus, prepared, split_source="generate", seed=SEED, **subsets
    )
    return {
        "data_folder": corpus,
        "prep_folder": prepared,
        "split_source": "generate",
        **{key: f"[{value[0]}]" for key, value in subsets.items()},
        "out_n_neurons": LIBRISPEECH_SPEAKERS,
    }


@pytest.fixture(scope="module")
def voxceleb(tmp_path_factory):
    """Mini VoxCeleb roots and trimmed lists, both settings prepared once.

    Returns ``setting -> data overrides of its runs``.
    """
    root = tmp_path_factory.mktemp("corpus_baselines_voxceleb")
    data_folders, lists = write_corpus_and_lists(root)
    settings = {}
    for setting, eh_trials in (("vox1", None), ("vox2", "auto")):
        prepared = str(root / f"prepared_{setting}")
        prepare_voxceleb(
            data_folders,
            prepared,
            setting=setting,
            paper_lists=str(lists),
            vox1_eh_trials=eh_trials,
            seed=SEED,
            n_vox2_trials_per_class=TRIALS_PER_CLASS,
            num_workers=1,
        )
        settings[setting] = {
            "data_folder": data_folders,
            "prep_folder": prepared,
            "paper_lists": str(lists),
            "n_vox2_trials_per_class": TRIALS_PER_CLASS,
            "prep_num_workers": 1,
            "out_n_neurons": len(GROUPS[f"{setting}-dev"]),
        }
    return settings


@pytest.fixture(scope="module")
def corpus_data(librispeech, voxceleb):
    """``suffix -> data overrides`` for the end-to-end corpora."""
    return {"librispeech": librispeech, **voxceleb}


def _record_time(data):
    name = "librispeech" if "split_source" in data else "voxceleb"
    return options_path(data["prep_folder"], name).stat().st_mtime_ns


END_TO_END = [
    (system, suffix)
    for suffix in ("librispeech", "vox1")
    for system in sorted(VCTK_YAMLS)
]


@pytest.mark.parametrize(
    ("system", "suffix"), END_TO_END, ids=[f"{s}_{c}" for s, c in END_TO_END]
)
def test_trains_validates_and_tests(
    system, suffix, corpus_data, tiny_model, tmp_path
):
    """Training, validation EER, the best checkpoint and its test results,
    on the shared preparation of the corpus."""
    data = corpus_data[suffix]
    prepared_at = _record_time(data)
    settings = {
        **data,
        **_system_overrides(system, tiny_model, tmp_path),
        "output_folder": tmp_path,
        "device": "cpu",
    }
    folder = RECIPES / CORPORA[suffix][0]
    command = [
        sys.executable,
        "train.py",
        f"hparams/{system}_{suffix}.yaml",
        *_command_line(settings),
    ]
    # One thread per run: the suite shares a few cores.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    processes.run(command, 300, check=True, cwd=folder, env=env)
    assert _record_time(data) == prepared_at, "the preparation was redone"

    log = (tmp_path / "train_log.txt").read_text()
    trained_log = [line for line in log.splitlines() if "zero-shot" not in line]
    assert sum("valid EER" in line for line in trained_log) == 1, log
    assert "test EER" in log, log
    assert len(list((tmp_path / "save").glob("CKPT+*"))) == 1
    results = json.loads((tmp_path / "results.json").read_text())
    trials = read_trials(os.path.join(data["prep_folder"], "test_trials.csv"))
    model_name, _ = SYSTEMS[VCTK_YAMLS[system]]
    assert results["model"] == model_name
    assert results["corpus"] == CORPORA[suffix][2]
    assert results["n_trials"] == len(trials["label"])
    assert 0.0 <= results["EER"] <= 1.0
    scores = (tmp_path / "scores.txt").read_text().splitlines()
    assert [line.split()[:2] for line in scores] == [
        list(pair) for pair in zip(trials["enrol"], trials["test"], strict=True)
    ]
    assert torch.isfinite(
        torch.tensor([float(line.split()[3]) for line in scores])
    ).all()


@pytest.fixture
def one_thread():
    """One torch thread: on a few shared cores, more threads spin for
    seconds on the tiny convolutions (measured: a tiny ECAPA step takes
    4 s with 2 threads on 2 loaded cores, 0.02 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load(yaml_path, settings):
    overrides = "\n".join(f"{key}: {value}" for key, value in settings.items())
    with open(yaml_path, encoding="utf-8") as source:
        return load_hyperpyyaml(source, overrides)


def _train_batch(manifest, n_samples):
    """The first ``n_samples`` of two training utterances and their labels."""
    rows = read_csv(manifest)[:2]
    signals = []
    for row in rows:
        signal, _ = soundfile.read(
            row["wav"], start=int(row["start"]), frames=n_samples
        )
        signals.append(torch.tensor(signal, dtype=torch.float32))
    return torch.stack(signals), rows


@pytest.mark.parametrize("system", sorted(VCTK_YAMLS))
def test_vox2_yaml_prepares_and_runs_a_batch(
    system, voxceleb, tiny_model, tmp_path, one_thread
):
    """The vox2 yaml loads on the shared preparation of its setting (VoxCeleb2
    dev trains, Vox1-O validates); its model trains and embeds a batch."""
    data = voxceleb["vox2"]
    prepared_at = _record_time(data)
    settings = {
        **data,
        **_system_overrides(system, tiny_model, tmp_path),
        "output_folder": tmp_path,
    }
    hparams = _load(_yaml_path(system, "vox2"), settings)
    hparams["prepare_data"]()
    assert _record_time(data) == prepared_at, "the preparation was redone"
    assert hparams["corpus_name"] == "VoxCeleb"
    train = read_csv(hparams["train_annotation"])
    assert {row["spk_id"] for row in train} == set(GROUPS["vox2-dev"])
    valid = read_csv(hparams["valid_annotation"])
    assert {row["spk_id"] for row in valid} == set(GROUPS["vox1-test"])

    n_samples = round(hparams["crop_seconds"] * hparams["sample_rate"])
    wavs, rows = _train_batch(hparams["train_annotation"], n_samples)
    lengths = torch.ones(len(rows))
    modules = torch.nn.ModuleDict(hparams["modules"])
    modules.train()
    feats, feat_lens = modules["front_end"](wavs, lengths)
    logits = modules["classifier"](modules["embedding_model"](feats, feat_lens))
    assert logits.shape == (len(rows), 1, len(GROUPS["vox2-dev"]))
    speakers = sorted(GROUPS["vox2-dev"])
    labels = torch.tensor([[speakers.index(row["spk_id"])] for row in rows])
    loss = hparams["compute_cost"](logits, labels)
    assert torch.isfinite(loss)
    loss.backward()

    modules.eval()
    with torch.no_grad():
        feats, feat_lens = modules["front_end"](wavs, lengths)
        embeddings = modules["embedding_model"](feats, feat_lens)
    # One embedding per utterance; SincNet's a set of window embeddings.
    windows = hparams.get("eval_num_windows") if system == "sincnet" else 1
    assert embeddings.shape[:2] == (len(rows), windows)
    assert torch.isfinite(embeddings).all()
