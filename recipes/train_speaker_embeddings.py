#!/usr/bin/env python3
"""Trains a speaker-embedding model and evaluates it on verification trials.

One script for every corpus and every backend: the corpus's preparation
function, the front-end, the backend lobe and the schedule are named in the
yaml, so this file has no corpus branches.

    wav -> front_end (e.g. a frozen SSL model, all hidden states + lengths)
        -> embedding_model (e.g. UniPool) -> classifier (cosine logits)
        -> compute_cost (e.g. AAM-softmax)

Training draws random crops; validation and test embed full utterances with
their lengths. The schedule counts optimizer steps as the paper does: one
"epoch" here is ``valid_interval_steps`` steps, after which the EER on the
validation trials is measured and the checkpoint with the lowest EER is kept.
At the end the best checkpoint is scored on the test trials (scores file,
results JSON and DET plot in the output folder).

Usage, from a recipe folder::

    python train.py hparams/unipool_vctk.yaml --data_folder=/data/VCTK-Corpus

Besides SpeechBrain's run options and yaml overrides, the script takes
``--ddp_timeout=SECONDS`` (collective timeout under torchrun, default 7200)
and ``--resume_with_changed_hparams`` (continue a run's checkpoints with
other hyperparameters; the learning-rate schedule is then rebuilt). One run
at a time writes into an output folder; a second is refused, naming the
first. Errors of the set-up (busy or read-only folder, full disk, corrupt
checkpoint, changed hyperparameters, a schedule that does not add up, an
override of the wrong type) end with one line and exit code 2.

Authors
 * unipool-sv developers 2026
"""

import os
import sys

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.sampler import ReproducibleRandomSampler
from speechbrain.utils.distributed import (
    if_main_process,
    is_distributed_initialized,
)
from speechbrain.utils.logger import get_logger

from unipool_lobes.dataio.audio_reading import read_mono_segment
from unipool_lobes.dataio.batching import DurationBatchSampler, is_out_of_memory
from unipool_lobes.dataio.cropping import (
    check_crop_padding,
    random_crop_start,
    wrap_pad,
)
from unipool_lobes.dataio.manifest import read_manifest
from unipool_lobes.scoring.calibration import (
    evaluate_backend_stages,
    save_score_backend,
)
from unipool_lobes.scoring.metrics import (
    cosine_score_trials,
    reported_metrics,
    verification_results,
    window_pair_score_trials,
    write_scores,
)
from unipool_lobes.scoring.plots import plot_det
from unipool_lobes.scoring.trials import read_trials_of
from unipool_lobes.training.brain import StepBrain
from unipool_lobes.training.checkpoints import complete_checkpoints
from unipool_lobes.training.checks import (
    RESUME_FLAG,
    check_override_types,
    check_resume,
    check_schedule,
    per_process_batch_size,
    plain_value,
    resolved_hparams_text,
)
from unipool_lobes.training.distributed import (
    DEFAULT_TIMEOUT_SECONDS,
    decide_on_main,
    init_distributed,
    world_size,
)
from unipool_lobes.training.init_from import init_modules_from
from unipool_lobes.training.run_setup import (
    RUN_ERRORS,
    lock_run_folder,
    pop_option,
)
from unipool_lobes.utils.safe_io import write_json_atomic

logger = get_logger(__name__)


class SpeakerBrain(StepBrain):
    """Speaker-embedding training with validation EER as the selection key.

    Modules expected in ``hparams["modules"]``: ``front_end`` (waveforms and
    relative lengths to features and relative lengths), ``embedding_model``
    (features and lengths to ``[B, 1, E]``) and ``classifier``. The
    training machinery (non-finite batches, per-step schedules, margin
    ramps, CPU DDP) is :class:`unipool_lobes.training.brain.StepBrain`'s.
    """

    def compute_forward(self, batch, stage):
        """Embeds the batch; in training also returns the class logits.

        Arguments
        ---------
        batch : PaddedBatch
            With ``sig`` (padded waveforms and relative lengths).
        stage : sb.Stage
            TRAIN, VALID or TEST.

        Returns
        -------
        torch.Tensor
            Logits ``[B, 1, n_speakers]`` in training, else embeddings
            ``[B, 1, E]``.
        """
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        feats, feat_lens = self.modules.front_end(wavs, wav_lens)
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "feature_augment"):
            feats = self.hparams.feature_augment(feats, feat_lens)
        embeddings = self.modules.embedding_model(feats, feat_lens)
        if stage != sb.Stage.TRAIN:
            return embeddings
        return self.modules.classifier(embeddings)

    def compute_objectives(self, predictions, batch, stage):
        """Computes the classification loss on the training speakers.

        Arguments
        ---------
        predictions : torch.Tensor
            Logits from ``compute_forward``.
        batch : PaddedBatch
            With ``spk_id_encoded``.
        stage : sb.Stage
            Only TRAIN has a loss; validation is scored by EER.

        Returns
        -------
        torch.Tensor
            The loss.
        """
        spk_ids, _ = batch.spk_id_encoded
        return self.hparams.compute_cost(predictions, spk_ids)

    def on_fit_start(self):
        """Recovers and logs the start (``StepBrain``), then, on a fresh run
        with ``zero_shot_eval``, scores the untrained model."""
        super().on_fit_start()
        zero_shot = hasattr(self.hparams, "zero_shot_eval") and (
            self.hparams.zero_shot_eval
        )
        if zero_shot and not self.optimizer_step:
            self._zero_shot_evaluation()

    def _zero_shot_evaluation(self):
        """Scores the untrained model on the valid and test trials.

        ExploreWV2's ``zshot_eval``: the pretrained model before any
        training step, logged and written to ``zero_shot.json`` beside the
        results; no checkpoint is kept. Only a fresh run does it.
        """
        results = {}
        for name, dataset, options, trials in self.evaluation_sets:
            self.embed_set(dataset, options)
            _, scored = self.score_trials(trials)
            results[name] = reported_metrics(scored)
        self.hparams.train_logger.log_stats(
            stats_meta={"zero-shot": "before training"},
            valid_stats=results["valid"],
            test_stats=results["test"],
        )
        if if_main_process():
            folder = os.path.dirname(self.hparams.results_file)
            write_json_atomic(os.path.join(folder, "zero_shot.json"), results)

    def embed_set(self, dataset, options):
        """Embeds every utterance of an evaluation set with the model as is.

        Arguments
        ---------
        dataset : DynamicItemDataset
            Full utterances with ``id`` and ``sig``.
        options : dict
            Loader options (:func:`eval_loader_options`).

        Returns
        -------
        ids : list of str
            Utterance IDs, one per row.
        embeddings : torch.Tensor
            ``[N, E]`` embeddings on the CPU (gathered from every process).
        """
        loader = self.make_dataloader(dataset, sb.Stage.TEST, **options)
        self.on_stage_start(sb.Stage.TEST)
        self.modules.eval()
        with torch.no_grad():
            for batch in loader:
                self.evaluate_batch(batch, sb.Stage.TEST)
        return self.gather_embeddings()

    def evaluate_batch(self, batch, stage):
        """Embeds a validation or test batch and keeps the embeddings.

        Arguments
        ---------
        batch : PaddedBatch
            Full utterances with ``id`` and ``sig``.
        stage : sb.Stage
            VALID or TEST.

        Returns
        -------
        torch.Tensor
            A zero loss: these stages are scored by EER in ``on_stage_end``.
        """
        try:
            with self.evaluation_ctx:
                embeddings = self.compute_forward(batch, stage=stage)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            longest = float(batch.sig[0].shape[1]) / self.hparams.sample_rate
            raise MemoryError(
                f"out of memory embedding a batch of {len(batch.id)} "
                f"utterances (longest {longest:.1f} s; first {batch.id[0]}): "
                "lower eval_max_batch_seconds (or eval_batch_size), or "
                "evaluate on a device with more memory"
            ) from error
        finite = torch.isfinite(embeddings.detach()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            flags = zip(batch.id, finite.tolist(), strict=True)
            bad = [utterance for utterance, ok in flags if not ok]
            raise ValueError(
                f"non-finite embedding for {len(bad)} utterance(s) of the "
                f"{stage.name.lower()} set: {', '.join(bad[:5])}; check their "
                "audio (NaN or inf samples) in the manifest"
            )
        self.embedding_ids.extend(batch.id)
        self.embedding_chunks.append(embeddings.squeeze(1).float().cpu())
        return torch.zeros(())

    def on_stage_start(self, stage, epoch=None):
        """Prepares the embedding store of the evaluation stages.

        Arguments
        ---------
        stage : sb.Stage
            The stage starting.
        epoch : int, optional
            The current epoch.
        """
        if stage == sb.Stage.TRAIN:
            sampler = getattr(self, "epoch_sampler", None)
            if sampler is not None and epoch is not None:
                sampler.set_epoch(epoch)
        self.embedding_ids = []
        self.embedding_chunks = []

    def gather_embeddings(self):
        """Collects the embeddings of the last stage from every process.

        Under DDP each process embedded its shard of the utterances (the
        distributed sampler may repeat a few to even the shards out); every
        process gets the whole table, each utterance once.

        Returns
        -------
        ids : list of str
            Utterance IDs, one per row.
        embeddings : torch.Tensor
            ``[N, E]`` embeddings on the CPU.
        """
        ids = self.embedding_ids
        embeddings = torch.cat(self.embedding_chunks)
        if not is_distributed_initialized():
            return ids, embeddings
        shards = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shards, (ids, embeddings))
        table = {}
        for shard_ids, shard_embeddings in shards:
            for utt_id, row in zip(shard_ids, shard_embeddings, strict=True):
                table.setdefault(utt_id, row)
        return list(table), torch.stack(list(table.values()))

    def score_trials(self, trials):
        """Scores a trial list with the embeddings of the last stage.

        The gathered table is kept as ``scored_embeddings`` (the score
        back-end reuses the test stage's: no second gather).

        Arguments
        ---------
        trials : dict
            With ``enrol``, ``test`` (utterance IDs) and ``label`` lists.

        Returns
        -------
        scores : torch.Tensor
            Cosine score of each trial.
        results : dict
            EER, both minDCF forms and the rest of
            ``verification_results``.
        """
        if self.debug:
            self._embed_whole_set_for(trials)
        ids, embeddings = self.gather_embeddings()
        self.scored_embeddings = (ids, embeddings)
        if embeddings.dim() == 3:
            # A set of window embeddings per utterance (SincNet's
            # eval_output: windows): the authors' window-pair score.
            scores = window_pair_score_trials(
                embeddings,
                ids,
                trials["enrol"],
                trials["test"],
                clamp=self.hparams.window_score_clamp,
            )
        else:
            scores = cosine_score_trials(
                embeddings, ids, trials["enrol"], trials["test"]
            )
        results = verification_results(trials["label"], scores)
        return scores, results

    def _embed_whole_set_for(self, trials):
        """Under ``--debug`` SpeechBrain stops the evaluation loops after
        ``debug_batches`` batches; the rest of the set is embedded here so
        that every trial has its embeddings."""
        embedded = set(self.embedding_ids)
        if embedded.issuperset(trials["enrol"]) and embedded.issuperset(
            trials["test"]
        ):
            return
        for _, dataset, options, set_trials in self.evaluation_sets:
            if set_trials is trials:
                self.embed_set(dataset, options)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the training loss, or scores the trials of the stage.

        Validation keeps the checkpoint with the lowest EER on the
        validation trials; test writes the scores file and results JSON.

        Arguments
        ---------
        stage : sb.Stage
            The stage ending.
        stage_loss : float
            Average training loss (zero for the evaluation stages).
        epoch : int, optional
            The current epoch (validation interval).
        """
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            if self.nonfinite_count:
                self.train_stats["skipped batches"] = self.nonfinite_count
            return
        if stage == sb.Stage.VALID:
            _, results = self.score_trials(self.hparams.valid_trials_data)
            stats = reported_metrics(results)
            self.hparams.train_logger.log_stats(
                stats_meta=self.step_meta(),
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={
                    "EER": results["EER_percent"],
                    "EER_threshold": results["threshold"],
                    "step": self.optimizer_step,
                },
                min_keys=["EER"],
                num_to_keep=1,
            )
            return
        scores, results = self.score_trials(self.hparams.test_trials_data)
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
            test_stats=reported_metrics(results),
        )
        if if_main_process():
            trials = self.hparams.test_trials_data
            trials_name = os.path.basename(self.hparams.test_trials)
            write_scores(
                self.hparams.scores_file,
                trials["enrol"],
                trials["test"],
                trials["label"],
                scores.tolist(),
            )
            results.update(
                model=self.hparams.model_name,
                corpus=self.hparams.corpus_name,
                trials=os.path.abspath(self.hparams.test_trials),
            )
            write_json_atomic(self.hparams.results_file, results)
            plot_det(
                trials["label"],
                scores.numpy(),
                os.path.join(
                    os.path.dirname(self.hparams.results_file), "det.png"
                ),
                title=f"{self.hparams.model_name} on {trials_name}",
            )
        self.test_results = results


def backend_evaluation(brain, hparams, datasets):
    """Scores the test trials through the stages of the scoring back-end.

    The LAP authors' phases 4-6 after the test: the training utterances,
    whole, are embedded as the cohort; the test trials are scored as raw
    cosines, with the cohort mean subtracted, with AS-norm over the
    ``backend_top_k`` closest training-speaker means, and calibrated by
    QMF (logistic regression on ``calibration_trials`` seeded
    training-set trials). Each stage's metrics (EER, minDCF, Cllr, min
    Cllr) are logged and written to ``backend_results.json``; the cohort
    and the calibration are saved beside the results, for ``unipool-sv
    export`` to carry into the model folder.

    Arguments
    ---------
    brain : SpeakerBrain
        The brain after ``evaluate``: its ``scored_embeddings`` are the
        gathered test embeddings (gathered once, by the test stage).
    hparams : dict
        The loaded hyperparameters.
    datasets : dict
        With ``test`` and ``cohort``.
    """
    test_ids, test_embeddings = brain.scored_embeddings
    cohort = datasets["cohort"]
    cohort_ids, cohort_embeddings = brain.embed_set(
        cohort, eval_loader_options(hparams, cohort)
    )
    if not if_main_process():
        return
    rows, test_rows = cohort.data, datasets["test"].data
    stages, artefacts = evaluate_backend_stages(
        cohort_embeddings,
        [rows[utterance]["spk_id"] for utterance in cohort_ids],
        [float(rows[utterance]["duration"]) for utterance in cohort_ids],
        test_embeddings,
        test_ids,
        [float(test_rows[utterance]["duration"]) for utterance in test_ids],
        hparams["test_trials_data"],
        top_k=hparams["backend_top_k"],
        n_calibration_trials=hparams["calibration_trials"],
        seed=hparams["calibration_seed"],
    )
    results = {}
    for name, stage in stages.items():
        results[name] = stage["results"]
        hparams["train_logger"].log_stats(
            stats_meta={"back-end stage": name},
            test_stats=reported_metrics(stage["results"]),
        )
    folder = os.path.dirname(hparams["results_file"])
    save_score_backend(folder, artefacts)
    write_json_atomic(os.path.join(folder, "backend_results.json"), results)
    brain.backend_results = results


def dataio_prep(hparams):
    """Creates the datasets and their audio and label pipelines.

    Training items are random crops of ``crop_seconds``. A shorter
    utterance is repeated until the crop is full with ``crop_padding:
    wrap`` (the authors' rule: no training batch holds padding), or kept
    whole with ``pad`` (the batch pads it and its true length masks the
    padding). Validation and test items are full utterances, sorted by
    duration so that batches hold similar lengths.

    The LAP pipeline's training items (all off unless the yaml names
    them): ``speed_perturb`` changes the speed of the whole utterance
    before the crop, and each perturbed copy is a class of its own
    (``label + speakers * offset``; the head has ``classes_per_speaker``
    classes per speaker, kept in later phases without the perturbation);
    ``waveform_augment`` (a partial, built here once the noise manifests
    exist) adds noise, music, babble or reverberation to the crop. Both run
    in the loader workers, drawing from the worker's seeded torch
    generator. With ``score_backend`` the training utterances, whole, form
    the ``cohort`` set of the scoring back-end.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.

    Returns
    -------
    datasets : dict
        ``train``, ``valid`` and ``test`` DynamicItemDatasets.
    label_encoder : CategoricalEncoder
        The speaker label encoder fitted on the training set.
    """
    sample_rate = hparams["sample_rate"]
    crop_samples = int(hparams["crop_seconds"] * sample_rate)
    crop_padding = check_crop_padding(hparams["crop_padding"])
    speed_perturb = hparams.get("speed_perturb")
    augmenter = None
    if hparams.get("waveform_augment") is not None:
        augmenter = hparams["waveform_augment"]()

    manifests = {
        "train": hparams["train_annotation"],
        "valid": hparams["valid_annotation"],
        "test": hparams["test_annotation"],
    }
    datasets = {}
    for split, csv_path in manifests.items():
        rows = read_manifest(
            csv_path, replacements={"data_root": hparams["data_folder"]}
        )
        if not rows:
            raise ValueError(f"The {split} manifest {csv_path} has no rows.")
        datasets[split] = sb.dataio.dataset.DynamicItemDataset(rows)
        if split == "train" and hparams.get("score_backend"):
            datasets["cohort"] = sb.dataio.dataset.DynamicItemDataset(rows)

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig", "class_offset")
    def random_crop_pipeline(wav, start, stop):
        start, stop = int(start), int(stop)
        offset = 0
        if speed_perturb is None:
            start += random_crop_start(stop - start, crop_samples)
            n_samples = min(stop - start, crop_samples)
            signal = read_mono_segment(wav, start, n_samples, sample_rate)
        else:
            # The authors perturb the whole utterance, then crop.
            signal = read_mono_segment(wav, start, stop - start, sample_rate)
            signal, offset = speed_perturb(signal)
            first = random_crop_start(len(signal), crop_samples)
            signal = signal[first : first + crop_samples]
        if crop_padding == "wrap":
            signal = wrap_pad(signal, crop_samples)
        if augmenter is not None:
            signal = augmenter(signal)
        yield signal
        yield offset

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def full_utterance_pipeline(wav, start, stop):
        start = int(start)
        return read_mono_segment(wav, start, int(stop) - start, sample_rate)

    label_encoder = sb.dataio.encoder.CategoricalEncoder()

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id", "speaker_index")
    def label_pipeline(spk_id):
        yield spk_id
        yield label_encoder.encode_label(spk_id)

    @sb.utils.data_pipeline.takes("speaker_index", "class_offset")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def class_pipeline(speaker_index, class_offset):
        label = speaker_index + len(label_encoder) * class_offset
        return torch.LongTensor([label])

    sb.dataio.dataset.add_dynamic_item(
        [datasets["train"]], random_crop_pipeline
    )
    sb.dataio.dataset.add_dynamic_item([datasets["train"]], label_pipeline)
    sb.dataio.dataset.add_dynamic_item([datasets["train"]], class_pipeline)
    sb.dataio.dataset.set_output_keys(
        [datasets["train"]], ["id", "sig", "spk_id_encoded"]
    )
    for split in [name for name in datasets if name != "train"]:
        sb.dataio.dataset.add_dynamic_item(
            [datasets[split]], full_utterance_pipeline
        )
        sb.dataio.dataset.set_output_keys([datasets[split]], ["id", "sig"])
        datasets[split] = datasets[split].filtered_sorted(sort_key="duration")

    label_encoder.load_or_create(
        path=os.path.join(hparams["save_folder"], "label_encoder.txt"),
        from_didatasets=[datasets["train"]],
        output_key="spk_id",
    )
    n_speakers = len(label_encoder)
    copies = hparams.get("classes_per_speaker", 1)
    if n_speakers * copies != hparams["out_n_neurons"]:
        per_speaker = f" x {copies} classes per speaker" if copies > 1 else ""
        raise ValueError(
            f"out_n_neurons is {hparams['out_n_neurons']} but the training "
            f"manifest {hparams['train_annotation']} has {n_speakers} "
            f"speakers{per_speaker}: set --out_n_neurons="
            f"{n_speakers * copies}."
        )
    if speed_perturb is not None and (
        speed_perturb.classes_per_speaker > copies
    ):
        raise ValueError(
            f"speed_perturb makes {speed_perturb.classes_per_speaker} "
            f"classes per speaker but classes_per_speaker is {copies}: set "
            f"--classes_per_speaker={speed_perturb.classes_per_speaker}"
        )
    return datasets, label_encoder


def main(argv):
    """Prepares the data, trains, and tests the best checkpoint.

    Before any work: the overrides are type-checked, the schedule is
    checked to train exactly ``number_of_steps`` steps, the output folder is
    checked to be writable and locked for this run, and a resumed run is
    checked to have the hyperparameters it was started with. Under DDP each
    of these is decided on the main process and shared.

    Arguments
    ---------
    argv : list
        Command-line arguments: the yaml file, then overrides, plus
        ``--ddp_timeout=SECONDS`` (collective timeout under torchrun) and
        ``--resume_with_changed_hparams``.

    Returns
    -------
    SpeakerBrain
        The trained brain (``test_results`` holds the test metrics).
    """
    argv, ddp_timeout = pop_option(
        argv, "--ddp_timeout", float, DEFAULT_TIMEOUT_SECONDS
    )
    argv, allow_changes = pop_option(argv, RESUME_FLAG, bool, False)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    check_override_types(hparams_file, overrides)
    init_distributed(run_opts, ddp_timeout)
    # Before the yaml builds anything (its checkpointer creates folders):
    # the output folder is checked and locked from the resolved text.
    resolved = resolved_hparams_text(hparams_file, overrides)
    output_folder = plain_value(resolved, "output_folder")
    decide_on_main(lock_run_folder, output_folder)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    check_schedule(hparams)
    # With gradient accumulation each optimizer step takes that many loader
    # batches, which split the global batch between them.
    accumulation = int(
        run_opts.get("grad_accumulation_factor")
        or hparams.get("grad_accumulation_factor", 1)
    )
    batch_per_process = per_process_batch_size(
        hparams["batch_size"], world_size() * accumulation
    )
    save_folder = hparams["checkpointer"].checkpoints_dir

    def check_run_state():
        resuming = bool(complete_checkpoints(save_folder))
        changed = check_resume(output_folder, resolved, resuming, allow_changes)
        return changed, resuming

    changes, resuming = decide_on_main(check_run_state)
    sb.create_experiment_directory(
        experiment_directory=output_folder,
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    logger.info(
        "Batch of %d utterances per optimizer step: %d per process over %d "
        "process(es) and %d accumulated batch(es)",
        hparams["batch_size"],
        batch_per_process,
        world_size(),
        accumulation,
    )
    # SpeechBrain recipes prepare with run_on_main(prepare_x, kwargs=...);
    # the yaml's prepare_data is that call's partial, and decide_on_main
    # runs it the same way on rank 0, except that a preparation error is
    # raised on every process instead of leaving the others at the barrier.
    decide_on_main(hparams["prepare_data"])
    if hparams.get("prepare_noise") is not None:
        decide_on_main(hparams["prepare_noise"])

    datasets, _ = dataio_prep(hparams)
    hparams["valid_trials_data"] = read_trials_of(
        hparams["valid_trials"], set(datasets["valid"].data_ids), "valid"
    )
    hparams["test_trials_data"] = read_trials_of(
        hparams["test_trials"], set(datasets["test"].data_ids), "test"
    )

    # A fresh run may start from another run's or a model's weights; a
    # resumed one continues from its own checkpoints.
    if hparams.get("init_from") and not resuming:
        folder = init_modules_from(
            hparams["init_from"], hparams["modules"], hparams["init_modules"]
        )
        logger.info(
            "Initialised %s from %s", ", ".join(hparams["init_modules"]), folder
        )
    brain = SpeakerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.rebuild_schedule = bool(changes)
    if any(p.requires_grad for p in hparams["front_end"].parameters()):
        brain.checkpointer.add_recoverable("front_end", hparams["front_end"])

    # One "epoch" is one validation interval of optimizer steps, on every
    # process: under DDP the sampler's draws are split between processes.
    sampler = ReproducibleRandomSampler(
        datasets["train"],
        seed=hparams["seed"],
        num_samples=hparams["valid_interval_steps"] * hparams["batch_size"],
    )
    brain.epoch_sampler = sampler
    brain.evaluation_sets = [
        (
            split,
            datasets[split],
            eval_loader_options(hparams, datasets[split]),
            hparams[f"{split}_trials_data"],
        )
        for split in ("valid", "test")
    ]
    train_loader_opts = dict(
        hparams["train_dataloader_opts"],
        sampler=sampler,
        batch_size=batch_per_process,
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_opts,
        valid_loader_kwargs=eval_loader_options(hparams, datasets["valid"]),
    )
    brain.evaluate(
        datasets["test"],
        min_key="EER",
        test_loader_kwargs=eval_loader_options(hparams, datasets["test"]),
    )
    if hparams.get("score_backend"):
        backend_evaluation(brain, hparams, datasets)
    return brain


def eval_loader_options(hparams, dataset):
    """Loader options of an evaluation set: batches of bounded duration.

    Batches hold at most ``eval_batch_size`` utterances and
    ``eval_max_batch_seconds`` seconds of padded audio (an utterance longer
    than that goes alone); under DDP each process embeds its shard.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``eval_dataloader_opts``,
        ``eval_max_batch_seconds``).
    dataset : DynamicItemDataset
        The validation or test set, sorted by duration.

    Returns
    -------
    dict
        Keyword arguments for the data loader.
    """
    options = dict(hparams["eval_dataloader_opts"])
    durations = [
        float(dataset.data[utterance]["duration"])
        for utterance in dataset.data_ids
    ]
    rank = torch.distributed.get_rank() if is_distributed_initialized() else 0
    options["batch_sampler"] = DurationBatchSampler(
        durations,
        max_batch_size=options.pop("batch_size", 1),
        max_seconds=hparams["eval_max_batch_seconds"],
        rank=rank,
        world_size=world_size(),
    )
    return options


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except RUN_ERRORS as error:
        print(f"{sys.argv[0]}: error: {error}", file=sys.stderr)
        sys.exit(2)
