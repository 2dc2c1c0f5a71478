"""Parity of our LAP and MHFA lobes with the LAP authors' classes.

The reference modules below re-implement, from the spec
(``lap_pipeline.md`` sections 3.2 and 3.3) and the structure of the
authors' code (GitHub sadPororo/LAP: ``LAP`` in
``src/modules/pooling_layers/layer_aggregation.py``, ``ASTP`` in
``src/modules/speaker_networks/astp.py``, ``MHFA`` in
``src/modules/speaker_networks/mhfa.py``), the authors' backend with their
parameter names and shapes, so that their ``state_dict()`` is in the
authors' layout. They take the authors' input layout ``[B, D, T, L]``;
ours take ``[B, L, T, D]`` and relative lengths.

Authors
 * unipool-sv developers 2026
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from unipool_lobes.models.lap import LAP
from unipool_lobes.models.lap_authors import (
    lap_state_dict_from_authors,
    lap_state_dict_to_authors,
    mhfa_state_dict_from_authors,
    mhfa_state_dict_to_authors,
)
from unipool_lobes.models.mhfa import MHFA
from unipool_lobes.models.unipool.pooling import AttentiveStatisticsPooling

# The authors' LAP + ASTP options, and a small configuration.
AUTHORS_LAP = {"context_std": "unbiased", "time_dropout_mode": "frames"}
SMALL = {"input_size": 32, "num_layers": 5, "heads": 4, "channels": 16}
BASE = {"input_size": 768, "num_layers": 13, "heads": 16, "channels": 512}
LARGE = {"input_size": 1024, "num_layers": 25, "heads": 16, "channels": 512}
EMBEDDING = 192
TOLERANCE = 1e-5
# Relative tolerance by dtype: float32 (batch 8: a batch norm over 3
# embeddings in training already amplifies rounding to 2e-5) and float64,
# where the two agree to rounding (1e-14).
TOLERANCES = {torch.float32: TOLERANCE, torch.float64: 1e-10}
DTYPES = pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"]
)


# The reference: the authors' classes, re-implemented ########################
class RefLAP(nn.Module):
    """The authors' ``LAP``: ``[B, D, T, L]`` in, ``[B, C, T]`` out."""

    def __init__(self, n_layer, size_in, size_out, n_head, dropout):
        super().__init__()
        self.n_head = n_head
        self.in_norm = nn.BatchNorm2d(size_in)
        self.in_weight = (
            nn.Conv2d(size_in, size_in, (1, 1)) if n_head > 1 else nn.Identity()
        )
        half = n_layer // 2
        self.sq_weight = nn.Parameter(torch.randn(n_head, n_layer, half))
        self.sq_bias = nn.Parameter(torch.zeros(n_head, 1, half))
        self.ex_weight = nn.Parameter(torch.randn(n_head, half, n_layer))
        self.ex_bias = nn.Parameter(torch.zeros(n_head, 1, n_layer))
        self.dropout = nn.Dropout(dropout)
        self.out_weight = nn.Conv1d(size_in, size_out, 1)
        self.out_norm = nn.BatchNorm1d(size_out)

    def _score(self, summary):
        hidden = F.relu(summary @ self.sq_weight + self.sq_bias)
        return hidden @ self.ex_weight + self.ex_bias

    def forward(self, x):
        batch, size, frames, layers = x.shape
        x = self.in_weight(self.in_norm(x))
        # Channel h * d + j is feature j of head h; one row per frame.
        x = x.view(batch, self.n_head, -1, frames, layers)
        x = x.permute(0, 3, 1, 2, 4).reshape(
            batch * frames, self.n_head, -1, layers
        )
        mean_score = self._score(x.mean(dim=2, keepdim=True))
        max_score = self._score(x.amax(dim=2, keepdim=True))
        weights = self.dropout(torch.sigmoid(mean_score + max_score))
        x = (x * weights).amax(dim=-1)  # [B T, h, d]
        x = x.reshape(batch, frames, size).transpose(1, 2)
        return self.out_norm(self.out_weight(x))


class RefStatisticsPooling(nn.Module):
    """The authors' ASTP time pooling (``t_pool``), without a mask."""

    def __init__(self, size_in, dropout):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * size_in, size_in // 2, 1),
            nn.ReLU(),
            nn.BatchNorm1d(size_in // 2),
            nn.Conv1d(size_in // 2, size_in, 1),
        )
        self.p_dropout = dropout
        self.norm = nn.BatchNorm1d(2 * size_in)

    def forward(self, x):
        batch, _, frames = x.shape
        mean = x.mean(dim=-1, keepdim=True).expand_as(x)
        std = x.std(dim=-1, keepdim=True).expand_as(x)  # unbiased
        scores = self.attention(torch.cat((x, mean, std), dim=1))
        if self.training:
            drop = torch.rand((batch, 1, frames), device=x.device)
            scores = scores.masked_fill(
                drop < self.p_dropout, torch.finfo(scores.dtype).min
            )
        weights = scores.softmax(dim=-1)
        mu = (x * weights).sum(dim=-1)
        var = ((x * x) * weights).sum(dim=-1) - mu * mu
        return self.norm(torch.cat((mu, var.clamp(min=1e-4).sqrt()), dim=1))


class RefASTP(nn.Module):
    """The authors' ``ASTP``: time pooling and the embedding layer."""

    def __init__(self, hidden_size, embed_dim, dropout):
        super().__init__()
        self.t_pool = RefStatisticsPooling(hidden_size, dropout)
        self.emb_weight = nn.Linear(2 * hidden_size, embed_dim)
        self.emb_norm = nn.BatchNorm1d(embed_dim)

    def forward(self, x):
        return self.emb_norm(self.emb_weight(self.t_pool(x)))


class RefSUPERB(nn.Module):
    """The authors' ``SUPERB``: a softmax-weighted sum over layers."""

    def __init__(self, n_layer):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.ones(n_layer) / n_layer)

    def forward(self, x):
        return x @ self.layer_weights.softmax(dim=-1)


class RefMHFA(nn.Module):
    """The authors' ``MHFA`` (64 heads, compression 128, output 256)."""

    def __init__(self, config, lap=False, dropout=0.1):
        super().__init__()
        layers, size = config["num_layers"], config["input_size"]
        for name in ("l_pool_k", "l_pool_v"):
            if lap:
                channels = config["channels"]
                pool = RefLAP(layers, size, channels, config["heads"], dropout)
            else:
                pool = RefSUPERB(layers)
            setattr(self, name, pool)
        width = config["channels"] if lap else size
        self.cmp_linear_k = nn.Linear(width, 128)
        self.cmp_linear_v = nn.Linear(width, 128)
        self.att_head = nn.Linear(128, 64)
        self.pooling_fc = nn.Linear(64 * 128, 256)

    def forward(self, x):
        keys = self.cmp_linear_k(self.l_pool_k(x).transpose(1, 2))
        values = self.cmp_linear_v(self.l_pool_v(x).transpose(1, 2))
        weights = self.att_head(keys).softmax(dim=1)  # [B, T, H]
        pooled = weights.transpose(1, 2) @ values  # [B, H, 128]
        return self.pooling_fc(pooled.flatten(start_dim=1))


def ref_lap_backend(config, dropout=0.1):
    """The authors' ``SVmodel.backend`` for ``lap`` + ``astp``."""
    return nn.ModuleDict(
        {
            "layer_aggregation": RefLAP(
                config["num_layers"],
                config["input_size"],
                config["channels"],
                config["heads"],
                dropout,
            ),
            "speaker_network": RefASTP(config["channels"], EMBEDDING, dropout),
        }
    )


def run_ref_lap(backend, x):
    """Runs :func:`ref_lap_backend`'s modules in order, as ``SVmodel``."""
    for module in backend.values():
        x = module(x)
    return x


def our_lap(config, dropout=0.1, **options):
    """Our LAP at ``config`` sizes."""
    return LAP(
        config["input_size"],
        config["num_layers"],
        channels=config["channels"],
        num_heads=config["heads"],
        embedding_size=EMBEDDING,
        dropout=dropout,
        **options,
    )


def our_mhfa(config, lap=False, **options):
    """Our MHFA at ``config`` sizes, with the authors' MHFA sizes."""
    if lap:
        options.update(
            layer_aggregation="lap",
            lap_channels=config["channels"],
            lap_num_heads=config["heads"],
        )
    return MHFA(config["input_size"], config["num_layers"], **options)


def randomise_(module, seed=0):
    """Random weights and batch-norm statistics, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith(("running_var", "norm.weight")):
                tensor.copy_(
                    1 + 0.5 * torch.rand(tensor.shape, generator=generator)
                )
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(noise / fan_in**0.5)
            else:
                tensor.copy_(0.3 * noise)
    return module


def hidden_states(config, batch=8, frames=40, seed=1, dtype=torch.float32):
    """Ours ``[B, L, T, D]`` and the authors' ``[B, D, T, L]`` view."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, config["num_layers"], frames, config["input_size"])
    ours = torch.randn(shape, generator=generator).to(dtype)
    return ours, ours.permute(0, 3, 2, 1)


def relative_difference(ours, theirs):
    """``max |ours - theirs| / max |theirs|``."""
    ours = ours.reshape(theirs.shape)
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def parameter_count(module):
    """The number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def loaded_lap_pair(config, dropout=0.1, **options):
    """A randomised reference LAP backend and ours with its weights."""
    theirs = randomise_(ref_lap_backend(config, dropout))
    ours = our_lap(config, dropout, **{**AUTHORS_LAP, **options})
    state = lap_state_dict_from_authors(theirs.state_dict())
    ours.load_state_dict(state, strict=True)
    return theirs, ours


def loaded_mhfa_pair(config, lap):
    """A randomised reference MHFA and ours with its weights."""
    theirs = randomise_(RefMHFA(config, lap))
    ours = our_mhfa(config, lap)
    state = mhfa_state_dict_from_authors(theirs.state_dict())
    ours.load_state_dict(state, strict=True)
    return theirs, ours


# Parity ######################################################################
@DTYPES
@pytest.mark.parametrize("config", [SMALL, BASE], ids=["small", "13x768"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_lap_matches_authors(config, mode, dtype):
    """Ours with the authors' options and weights gives their embeddings.

    In training both drop at rate 0.1 (layer scores and whole frames of
    the time attention), from the same random stream; batch norms use
    batch statistics on both sides, and update the same running ones.
    """
    theirs, ours = loaded_lap_pair(config)
    theirs.to(dtype).train(mode == "train")
    ours.to(dtype).train(mode == "train")
    ours_in, theirs_in = hidden_states(config, dtype=dtype)
    torch.manual_seed(7)
    expected = run_ref_lap(theirs, theirs_in)
    torch.manual_seed(7)
    got = ours(ours_in)
    assert got.dtype == dtype
    assert relative_difference(got, expected) < TOLERANCES[dtype]
    back = lap_state_dict_to_authors(ours.state_dict())
    for name, tensor in theirs.state_dict().items():
        torch.testing.assert_close(back[name], tensor)


def test_lap_frame_dropout_matches_authors_draws():
    """In training, ours drops the frames the authors' draws drop.

    Without the frame dropout (rate 0 in our time pooling only) the same
    random stream gives another output: the dropout is active and theirs.
    """
    theirs, ours = loaded_lap_pair(SMALL, dropout=0.3)
    ours_in, theirs_in = hidden_states(SMALL)
    theirs.train()
    ours.train()
    torch.manual_seed(3)
    expected = run_ref_lap(theirs, theirs_in)
    torch.manual_seed(3)
    assert relative_difference(ours(ours_in), expected) < TOLERANCE
    ours.time_pooling.dropout.p = 0.0
    torch.manual_seed(3)
    assert relative_difference(ours(ours_in), expected) > 1e-3


def test_lap_padded_batch_matches_authors_per_utterance():
    """Padded frames stay out: each utterance gets the authors' embedding
    of its valid frames alone (eval), the unbiased std over ``N`` frames.
    """
    theirs, ours = loaded_lap_pair(SMALL)
    theirs.eval()
    ours.eval()
    ours_in, theirs_in = hidden_states(SMALL, batch=3, frames=30)
    valid = [30, 7, 19]
    ours_in[1, :, 7:] = 1e4  # padding must not matter
    got = ours(ours_in, torch.tensor(valid) / 30).squeeze(1)
    for index, frames in enumerate(valid):
        expected = run_ref_lap(theirs, theirs_in[index : index + 1, :, :frames])
        assert relative_difference(got[index], expected[0]) < TOLERANCE


@DTYPES
@pytest.mark.parametrize("config", [SMALL, BASE], ids=["small", "13x768"])
@pytest.mark.parametrize("lap", [False, True], ids=["superb", "lap"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mhfa_matches_authors(config, lap, mode, dtype):
    """Ours with the authors' weights gives their MHFA embeddings, with
    either aggregator (the LAP ones drop layer scores in training from the
    same random stream on both sides).
    """
    theirs, ours = loaded_mhfa_pair(config, lap)
    theirs.to(dtype).train(mode == "train")
    ours.to(dtype).train(mode == "train")
    ours_in, theirs_in = hidden_states(config, dtype=dtype)
    torch.manual_seed(5)
    expected = theirs(theirs_in)
    torch.manual_seed(5)
    got = ours(ours_in)
    assert relative_difference(got, expected) < TOLERANCES[dtype]


# Parameter counts (no forward pass) #########################################
@pytest.mark.parametrize(
    ("config", "count"), [(BASE, 1_714_480), (LARGE, 2_312_464)]
)
def test_lap_parameter_count(config, count):
    """Spec section 3.2's backend sizes, equal to the reference's."""
    assert parameter_count(our_lap(config)) == count
    assert parameter_count(ref_lap_backend(config)) == count


@pytest.mark.parametrize(
    ("config", "lap", "count"),
    [
        (BASE, False, 2_302_554),
        (LARGE, False, 2_368_114),
        (BASE, True, 4_216_352),
        (LARGE, True, 5_412_320),
    ],
)
def test_mhfa_parameter_count(config, lap, count):
    """MHFA sizes; with LAP aggregators (16 heads, C 512) spec section
    11's 4.2M (13 x 768) and 5.4M (25 x 1024).
    """
    assert parameter_count(our_mhfa(config, lap)) == count
    assert parameter_count(RefMHFA(config, lap)) == count


# The authors' options ########################################################
def test_frame_dropout_drops_whole_frames_without_rescaling():
    """One draw per (utterance, frame) shared by all channels; the kept
    frames get the softmax over the kept frames (no rescaling); padding
    stays out even when every valid frame is dropped.
    """
    pool = AttentiveStatisticsPooling(8, dropout=0.5, dropout_mode="frames")
    pool.train()
    logits = torch.randn(4, 8, 50)
    torch.manual_seed(0)
    weights = pool._drop_frames(logits, None)
    dropped = weights == 0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # the same for every channel
    kept = logits.masked_fill(dropped, float("-inf")).softmax(dim=-1)
    torch.testing.assert_close(weights, kept)
    pool.dropout.p = 1.0
    valid = torch.arange(50) < 30
    weights = pool._drop_frames(logits, valid.expand(4, 1, 50))
    torch.testing.assert_close(
        weights[..., :30], torch.full((4, 8, 30), 1 / 30)
    )
    assert (weights[..., 30:] == 0).all()


def test_frame_dropout_changes_the_output_in_training_only():
    """LAP's frame dropout acts in training and nowhere else."""
    lap = our_lap(SMALL, dropout=0.5, **AUTHORS_LAP)
    lap.layer_pooling.dropout.p = 0.0  # isolate the time attention
    ours_in, _ = hidden_states(SMALL)
    lap.eval()
    reference = lap(ours_in)
    torch.testing.assert_close(lap(ours_in), reference)
    lap.time_pooling.dropout.p = 0.0
    torch.testing.assert_close(lap(ours_in), reference)
    lap.train()
    without = lap(ours_in)
    lap.time_pooling.dropout.p = 0.5
    torch.manual_seed(0)
    assert relative_difference(lap(ours_in), without) > 1e-3


@pytest.mark.parametrize("lengths", [None, torch.tensor([1.0, 0.5, 0.8])])
def test_unbiased_context_std_changes_the_training_output(lengths):
    """The unbiased option is not the biased std (short utterances make
    ``N / (N - 1)`` large), with and without padding."""
    outputs = []
    for context_std in ("biased", "unbiased"):
        torch.manual_seed(0)
        lap = our_lap(SMALL, dropout=0.0, context_std=context_std).train()
        ours_in, _ = hidden_states(SMALL, batch=3, frames=6)
        outputs.append(lap(ours_in, lengths))
    assert relative_difference(outputs[1], outputs[0]) > 1e-3


def test_attention_options_are_checked():
    """Misspelt options are errors, not silently today's behaviour."""
    with pytest.raises(ValueError, match="context_std"):
        our_lap(SMALL, context_std="unbiassed")
    with pytest.raises(ValueError, match="dropout_mode"):
        our_lap(SMALL, time_dropout_mode="frame")
    with pytest.raises(ValueError, match="init"):
        our_lap(SMALL, init="xavier")
    with pytest.raises(ValueError, match="layer_aggregation"):
        MHFA(32, 5, layer_aggregation="superb")


# Initialisation ##############################################################
def _xavier_bound(shape):
    """The Xavier-uniform bound of a tensor of the authors' ``shape``."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    return (6 / (fan_in + fan_out)) ** 0.5


def _check_authors_init(authors_state):
    """Biases 0, norm scales 1, weights Xavier by the authors' fans.

    ``authors_state`` is our initialised state dict in the authors' layout
    (names and shapes); MHFA's layer logits keep their start.
    """
    for name, tensor in authors_state.items():
        if "running" in name or name.endswith(("tracked", "layer_weights")):
            continue
        if "bias" in name:
            assert (tensor == 0).all(), name
        elif tensor.dim() == 1:  # a batch-norm scale
            assert (tensor == 1).all(), name
        else:
            bound = _xavier_bound(tensor.shape)
            assert tensor.abs().max() <= bound, name
            assert tensor.abs().max() > 0.8 * bound, name


@pytest.mark.parametrize("config", [SMALL, BASE], ids=["small", "13x768"])
def test_lap_authors_init(config):
    """``init="authors"``: Xavier by the fans of the authors' shapes."""
    torch.manual_seed(0)
    ours = our_lap(config, init="authors").state_dict()
    _check_authors_init(lap_state_dict_to_authors(ours))


def test_mhfa_authors_init():
    """MHFA's ``init="authors"`` (default ``pytorch``: nonzero biases)."""
    torch.manual_seed(0)
    for lap in (False, True):
        ours = our_mhfa(BASE, lap, init="authors").state_dict()
        _check_authors_init(mhfa_state_dict_to_authors(ours))
    default = our_mhfa(SMALL, lap=True)
    assert default.projection.bias.abs().sum() > 0
    weighted = our_mhfa(SMALL, init="authors")
    assert (weighted.key_layer_weights == 0).all()


# The state-dict mapping ######################################################
def test_lap_mapping_is_strict_and_accepts_svmodel_keys():
    """Missing and unknown keys are named; SVmodel prefixes are handled."""
    theirs = ref_lap_backend(SMALL).state_dict()
    model = {f"module.backend.{key}": value for key, value in theirs.items()}
    model["module.frontend.encoder.weight"] = torch.zeros(1)
    model["module.aam_softmax.weight"] = torch.zeros(1)
    converted = lap_state_dict_from_authors(model)
    assert converted.keys() == our_lap(SMALL).state_dict().keys()
    with pytest.raises(ValueError, match="aam_softmax"):
        lap_state_dict_from_authors(model, ignore_non_backend=False)
    partial = dict(theirs)
    del partial["speaker_network.emb_norm.running_var"]
    partial["layer_aggregation.extra"] = torch.zeros(1)
    with pytest.raises(KeyError) as error:
        lap_state_dict_from_authors(partial)
    assert "speaker_network.emb_norm.running_var" in str(error.value)
    assert "layer_aggregation.extra" in str(error.value)


def test_lap_mapping_one_head_has_no_projection():
    """With one head neither side has an input projection."""
    config = {**SMALL, "heads": 1}
    theirs = ref_lap_backend(config).state_dict()
    ours = our_lap(config)
    ours.load_state_dict(lap_state_dict_from_authors(theirs), strict=True)


def test_mhfa_mapping_is_strict():
    """A LAP-aggregator MHFA dict does not load as a weighted-sum one."""
    theirs = RefMHFA(SMALL, lap=True).state_dict()
    model = {f"backend.speaker_network.{k}": v for k, v in theirs.items()}
    converted = mhfa_state_dict_from_authors(model)
    assert converted.keys() == our_mhfa(SMALL, lap=True).state_dict().keys()
    del theirs["l_pool_v.out_norm.weight"]
    with pytest.raises(KeyError, match="l_pool_v.out_norm.weight"):
        mhfa_state_dict_from_authors(theirs)
    superb = RefMHFA(SMALL).state_dict()
    superb["l_pool_k.sq_weight"] = torch.zeros(4, 5, 2)
    with pytest.raises(KeyError, match="l_pool_k.layer_weights"):
        mhfa_state_dict_from_authors(superb)
