"""Training rounds, run in this process: snapshot, fine-tune, test, promote, re-score."""

import json
import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

import asr.round
from asr import recipe
from asr.model import ModelNotAvailable
from asr.round import LmScore, choose_language_model
from labeling import queue
from labeling.models import Clip, Transcript
from training import rounds
from training.models import ModelVersion, ScoringRun, TrainingRound
from training.worker import trainer
from training.worker.scoring import scoring_run
from training.worker.trainer import round_run

pytestmark = pytest.mark.django_db

TINY_ROUND = {
    "max_steps": 6,
    "batch_size": 4,
    "warmup_steps": 1,
    "eval_every": 3,
    "patience": 0,
    "learning_rate": 3e-4,
    "recovery_attempts": 0,  # six steps of a tiny model collapse by design: not retried here
}


@pytest.fixture
def english(project, settings, tmp_path):
    settings.VERNACULAR_ROUND_CONFIG = TINY_ROUND
    settings.VERNACULAR_MODEL_DIR = tmp_path / "models"
    settings.VERNACULAR_DEFAULT_BASE_MODEL = "builtin:tiny"
    # In-process rounds run inside the test's transaction: a second connection writing
    # heartbeats would wait on its lock. Progress updates write the heartbeat anyway.
    settings.VERNACULAR_HEARTBEAT_SECONDS = 3600
    project.alphabet = "abcdefghijklmnopqrstuvwxyz'"
    project.save()
    return project


@pytest.fixture
def labeled(english, labeled_speech):
    return labeled_speech(english)


def test_a_round_needs_labels(english, owner):
    with pytest.raises(ValidationError, match="Nothing to train on yet"):
        rounds.round_start(project=english, user=owner)


def test_a_round_snapshots_the_labeled_set(labeled, owner):
    started = rounds.round_start(project=labeled, user=owner)
    assert started.number == 1 and started.status == "queued"
    assert (len(started.train_clip_ids), len(started.dev_clip_ids), len(started.test_clip_ids)) == (
        6,
        2,
        2,
    )
    assert started.labeled_minutes == pytest.approx(
        sum(c.duration_seconds for c in Clip.objects.filter(status="accepted")) / 60
    )
    assert started.train_minutes == pytest.approx(
        sum(c.duration_seconds for c in Clip.objects.filter(pk__in=started.train_clip_ids)) / 60
    )
    assert started.train_minutes < started.labeled_minutes  # test and dev are not trained on
    assert started.base == "builtin:tiny"
    assert started.config.items() >= TINY_ROUND.items()  # the operator's settings, on the defaults
    assert started.config["self_train"] is False  # the project's setting, off by default


def test_a_second_start_is_refused_while_one_is_active(labeled, owner):
    rounds.round_start(project=labeled, user=owner)
    with pytest.raises(ValidationError, match="already queued or running"):
        rounds.round_start(project=labeled, user=owner)
    assert TrainingRound.objects.count() == 1


def test_cancelling_a_queued_round_stops_it_and_frees_the_project(labeled, owner):
    first = rounds.round_start(project=labeled, user=owner)
    rounds.round_cancel(training_round=first)
    first.refresh_from_db()
    assert first.status == "cancelled"
    round_run(round_id=first.pk, worker="w")  # a late task for it does nothing
    first.refresh_from_db()
    assert first.status == "cancelled"
    assert rounds.round_start(project=labeled, user=owner).number == 2


def test_a_running_round_whose_worker_went_quiet_is_queued_again(
    labeled, owner, settings, django_capture_on_commit_callbacks
):
    started = rounds.round_start(project=labeled, user=owner)
    quiet = timezone.now() - timedelta(seconds=settings.VERNACULAR_HEARTBEAT_STALE_SECONDS + 5)
    TrainingRound.objects.filter(pk=started.pk).update(
        status="running", heartbeat_at=quiet, attempts=1, worker="gpu@dead"
    )
    with django_capture_on_commit_callbacks() as sent:
        reaped = rounds.rounds_reap_stale(project=labeled)
    started.refresh_from_db()
    assert [r.pk for r in reaped] == [started.pk]
    assert started.status == "queued"
    assert "gpu@dead stopped answering; resuming" in started.log
    assert len(sent) == 1  # the task goes out again


def test_after_too_many_attempts_a_quiet_round_fails_with_a_reason(labeled, owner, settings):
    started = rounds.round_start(project=labeled, user=owner)
    quiet = timezone.now() - timedelta(hours=1)
    TrainingRound.objects.filter(pk=started.pk).update(
        status="running", heartbeat_at=quiet, attempts=settings.VERNACULAR_ROUND_MAX_ATTEMPTS
    )
    rounds.rounds_reap_stale(project=labeled)
    started.refresh_from_db()
    assert started.status == "failed"
    assert "stopped answering several times" in started.error


def test_a_round_trains_tests_promotes_and_the_pool_is_rescored(labeled, owner, annotator):
    open_clips = list(Clip.objects.filter(project=labeled, status="unlabeled"))
    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="test@here")
    started.refresh_from_db()
    assert started.status == "succeeded", started.error + started.log
    assert started.step == TINY_ROUND["max_steps"] and started.heartbeat_at is not None
    version = ModelVersion.objects.get()
    assert version.promoted and version.test_clips == 2
    assert version.test_cer >= 0 and version.test_wer >= 0
    assert len(version.test_details) == 2
    assert (version.labeled_minutes, version.round) == (started.labeled_minutes, started)
    # the lexicon and LM come from the training transcripts (no pool drafts yet: nothing
    # scored the pool before this first round), never the test set's
    train = trainer._labeled_clips(labeled, started.train_clip_ids)
    words = {word for _, _, text in train for word in text.split()}
    assert f"language model from the training transcripts ({len(words)} words)" in started.log
    assert "pool drafts" not in started.log
    lexicon = Path(version.directory) / "lexicon.txt"
    if "transcription uses it" in started.log:  # it lowered dev WER
        assert set(lexicon.read_text().split()) == words
    else:
        assert "the LM is not used" in started.log and not lexicon.exists()
    assert version.test_wer_lm >= 0 and version.test_cer_lm >= 0
    assert all("hypothesis_lm" in row for row in version.test_details)

    run = ScoringRun.objects.get()
    scoring_run(scoring_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.clips_done == run.clips_total == len(open_clips)
    scored = Clip.objects.filter(pk__in=[c.pk for c in open_clips])
    assert all(c.selection_score is not None for c in scored)
    # The queue now serves the best-scored open clip (test and dev targets are met? make them so).
    labeled.test_minutes_target = labeled.dev_minutes_target = 0
    labeled.save()
    best = max(scored, key=lambda c: c.selection_score)
    assert queue.clip_lease_next(project=labeled, user=annotator).pk == best.pk


def test_new_words_selection_queues_the_clip_whose_draft_the_labels_cannot_spell(
    labeled, owner, annotator, monkeypatch
):
    import training.worker.scoring
    from labeling.selectors import labeled_set

    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="w")
    known = sorted(
        {w for t in labeled_set(labeled) if t.clip.split == "train" for w in t.text.split()}
    )
    open_clips = list(Clip.objects.filter(project=labeled, status="unlabeled").order_by("pk"))
    assert len(open_clips) >= 2 and known
    labeled.selection = "new-words"
    labeled.test_minutes_target = labeled.dev_minutes_target = 0
    labeled.save()
    transcribe = training.worker.scoring.transcribe_clips
    version = ModelVersion.objects.get()

    for target in (0, len(open_clips) - 1):  # whichever clip it is, uncertainty aside

        def drafts_of(model, clips, config, decode=None, target=target):
            real = transcribe(model, clips, config, decode)
            texts = [" ".join(known[:3])] * len(clips)
            texts[target] = "zanzibar " + known[0]
            return [
                replace(result, text=text, greedy_text=text)
                for result, text in zip(real, texts, strict=True)
            ]

        monkeypatch.setattr(training.worker.scoring, "transcribe_clips", drafts_of)
        run = ScoringRun.objects.create(project=labeled, model_version=version)
        scoring_run(scoring_id=run.pk)
        first = Clip.objects.filter(status="unlabeled").order_by("-selection_score").first()
        assert first.pk == open_clips[target].pk
        assert first.draft_text == "zanzibar " + known[0]
    assert queue.clip_lease_next(project=labeled, user=annotator).pk == first.pk


def test_where_the_version_kept_its_lm_annotators_see_the_lm_draft_and_the_greedy_one_stays(
    labeled, owner, annotator, monkeypatch
):
    import training.worker.scoring

    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="w")
    version = ModelVersion.objects.get()
    run = ScoringRun.objects.get()
    decoded_by = []

    def version_decoder(model, directory):  # as if the round kept its lexicon + LM
        decoded_by.append(str(directory))
        return lambda log_probs: "habari za lm"

    monkeypatch.setattr(training.worker.scoring.base_models, "version_decoder", lambda m, d: None)
    scoring_run(scoring_id=run.pk)  # as if the version kept no LM: greedy drafts
    greedy = dict(Clip.objects.filter(status="unlabeled").values_list("pk", "draft_text"))
    assert set(Clip.objects.filter(status="unlabeled").values_list("draft_with_lm", flat=True)) == {
        False
    }
    monkeypatch.setattr(training.worker.scoring.base_models, "version_decoder", version_decoder)
    run = ScoringRun.objects.create(project=labeled, model_version=version)
    scoring_run(scoring_id=run.pk)

    assert decoded_by == [version.directory]
    open_clips = Clip.objects.filter(project=labeled, status="unlabeled")
    assert open_clips.exists()
    for clip in open_clips:
        assert clip.draft_text == "habari za lm"
        assert clip.draft_greedy == greedy[clip.pk]
        # where it came from, shown next to it
        assert (clip.draft_round, clip.draft_with_lm) == (version.round.number, True)
    leased = queue.clip_lease_next(project=labeled, user=annotator)
    assert leased.draft_text == "habari za lm"  # the box is prefilled with it


def test_new_words_knows_a_labeled_word_however_its_transcript_was_cased_or_punctuated(
    labeled, owner, monkeypatch
):
    import training.worker.scoring

    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="w")
    # a training transcript written "Kilimanjaro, Serengeti!": training reads it lowercased
    # and without punctuation (the project's rules), and so do the drafts
    Transcript.objects.filter(clip__project=labeled).exclude(
        clip__split__in=["test", "dev"]
    ).update(text="Kilimanjaro, Serengeti!")
    open_clips = list(Clip.objects.filter(project=labeled, status="unlabeled").order_by("pk"))
    transcribe = training.worker.scoring.transcribe_clips

    def drafts_of(model, clips, config, decode=None):
        texts = ["kilimanjaro serengeti"] * len(clips)
        texts[-1] = "zanzibar"  # the one word no label holds
        real = transcribe(model, clips, config, decode)
        return [replace(r, text=t, greedy_text=t) for r, t in zip(real, texts, strict=True)]

    monkeypatch.setattr(training.worker.scoring, "transcribe_clips", drafts_of)
    labeled.selection = "new-words"
    labeled.save()
    scoring_run(scoring_id=ScoringRun.objects.get().pk)
    first = Clip.objects.filter(status="unlabeled").order_by("-selection_score").first()
    assert first.pk == open_clips[-1].pk


def test_the_language_model_also_reads_the_drafts_of_unlabeled_clips_but_no_test_clips(
    labeled, owner, monkeypatch
):
    open_clips = list(Clip.objects.filter(project=labeled, status="unlabeled").order_by("pk"))
    assert len(open_clips) >= 3
    Clip.objects.filter(pk=open_clips[0].pk).update(draft_greedy="Zanzibar, pemba!")
    Clip.objects.filter(pk=open_clips[1].pk).update(draft_greedy="mafia", split="test")
    Clip.objects.filter(pk=open_clips[2].pk).update(draft_greedy="unguja", status="flagged")
    lm_texts = []

    def save_language_model(directory, texts, order=3):
        lm_texts.append(list(texts))
        return real_save(directory, texts, order)

    real_save = asr.round.save_language_model
    monkeypatch.setattr(asr.round, "save_language_model", save_language_model)
    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="w")
    started.refresh_from_db()

    train = trainer._labeled_clips(labeled, started.train_clip_ids)
    transcripts = [text for _, _, text in train]
    assert lm_texts[0] == transcripts
    assert lm_texts[1] == transcripts + ["zanzibar pemba"]  # written as the project's rules say
    assert "language model from the training transcripts + pool drafts (1)" in started.log


def test_the_lm_that_beats_greedy_on_dev_with_the_fewest_word_errors_is_used():
    scores = [LmScore("transcripts", 0.40, 0.08), LmScore("drafts", 0.30, 0.05)]
    decision = choose_language_model((0.5, 0.10), scores)
    assert (decision.chosen, decision.use) == (1, True)
    assert "from drafts beat greedy" in decision.why


def test_an_lm_with_fewer_word_errors_but_more_letter_errors_than_greedy_loses_to_one_with_both_fewer():
    """The small-budget pattern: the labeled-only LM forces words (WER down, CER up), the LM
    with the drafts lowers both. The second beats greedy decoding; the first does not."""
    scores = [LmScore("transcripts", 0.40, 0.12), LmScore("drafts", 0.41, 0.06)]
    decision = choose_language_model((0.45, 0.10), scores)
    assert (decision.chosen, decision.use) == (1, True)


def test_an_lm_that_does_worse_than_greedy_on_dev_is_tested_but_not_used():
    decision = choose_language_model((0.5, 0.10), [LmScore("transcripts", 0.45, 0.12)])
    assert (decision.chosen, decision.use) == (0, False)
    assert "none beat greedy" in decision.why


def test_without_a_dev_set_the_test_lm_reads_the_drafts_and_transcription_stays_greedy():
    scores = [LmScore("transcripts", math.nan, math.nan), LmScore("drafts", math.nan, math.nan)]
    decision = choose_language_model(None, scores)
    assert (decision.chosen, decision.use) == (1, False)
    assert choose_language_model(None, []).chosen is None


def test_a_second_round_continues_from_the_promoted_one(labeled, owner):
    first = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=first.pk, worker="w")
    second = rounds.round_start(project=labeled, user=owner)
    assert second.base == "version:1"
    round_run(round_id=second.pk, worker="w")
    second.refresh_from_db()
    assert second.status == "succeeded", second.error
    assert ModelVersion.objects.filter(promoted=True).count() == 1


def test_a_round_that_breaks_says_why(labeled, owner):
    labeled.base_model = "/nonexistent/checkpoint"
    labeled.save()
    started = rounds.round_start(project=labeled, user=owner)
    with pytest.raises(ModelNotAvailable):
        round_run(round_id=started.pk, worker="w")
    started.refresh_from_db()
    assert started.status == "failed"
    assert "/nonexistent/checkpoint" in started.error


def test_labels_rejected_after_the_snapshot_are_left_out_and_test_rows_stay_paired(
    labeled, owner, reviewer
):
    started = rounds.round_start(project=labeled, user=owner)
    gone_train = Transcript.objects.filter(clip_id__in=started.train_clip_ids).first()
    gone_test = Transcript.objects.get(clip_id=started.test_clip_ids[0])
    for transcript in (gone_train, gone_test):
        Transcript.objects.filter(pk=transcript.pk).update(status="submitted", reviewed_by=None)
        queue.transcript_review(transcript=transcript, reviewer=reviewer, action="reject")
    round_run(round_id=started.pk, worker="w")
    started.refresh_from_db()
    assert started.status == "succeeded"
    assert "train 5 clips, dev 2, test 1" in started.log
    (row,) = ModelVersion.objects.get().test_details
    kept = Transcript.objects.get(clip_id=started.test_clip_ids[1])
    assert row["clip"] == kept.clip_id and row["reference"] == kept.text


def test_automatic_rounds_start_after_enough_new_minutes(labeled, owner):
    labeled.auto_round_minutes = 100.0
    labeled.save()
    assert rounds.round_auto_start(project=labeled) is None  # about 0.7 labeled minutes < 100
    labeled.auto_round_minutes = 0.5
    labeled.save()
    started = rounds.round_auto_start(project=labeled)
    assert started is not None and started.created_by is None
    assert rounds.round_auto_start(project=labeled) is None  # one is active already
    TrainingRound.objects.filter(pk=started.pk).update(status="succeeded")
    assert rounds.round_auto_start(project=labeled) is None  # no new minutes since


def test_a_round_on_the_builtin_whisper_base(labeled, owner, settings):
    """The offline pretrained default: frozen Whisper-base encoder, a small CTC head."""
    labeled.base_model = "builtin:whisper-base"
    labeled.save()
    started = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=started.pk, worker="w")
    started.refresh_from_db()
    assert started.status == "succeeded", started.error + started.log
    version = ModelVersion.objects.get()
    assert version.promoted and version.test_cer is not None
    assert version.test_wer_lm is not None  # with the round's lexicon and LM too
    assert "language model from the training transcripts" in started.log
    head = json.loads((Path(version.directory) / "whisper_ctc.json").read_text())["head"]
    assert head["encoder_layers"] == [2, 3, 4, 5, 6]
    run = ScoringRun.objects.get()
    scoring_run(scoring_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.clips_done == 3


def test_a_round_caches_encoder_outputs_only_when_they_fit(settings):
    # a minute: 50 frames/s x 5 layers x 512 wide x 2 bytes = 15.4 MB of outputs
    minute = [np.zeros(16000 * 60, np.float32)]
    settings.VERNACULAR_ENCODER_CACHE_MB = 16
    assert trainer._encoder_outputs_fit(minute)
    settings.VERNACULAR_ENCODER_CACHE_MB = 15
    assert not trainer._encoder_outputs_fit(minute)


def test_a_base_with_steps_per_minute_trains_longer_as_the_labels_grow(settings, monkeypatch):
    base = {"max_steps": 500, "steps_per_minute": 25, "batch_size": 6}
    monkeypatch.setitem(recipe.ROUND_DEFAULTS, "some-base", base)
    settings.VERNACULAR_ROUND_CONFIG = {}

    assert rounds.round_config("some-base", 10)["max_steps"] == 500
    sixty = rounds.round_config("some-base", 60)
    assert (sixty["max_steps"], sixty["batch_size"], sixty["warmup_steps"]) == (1500, 6, None)

    settings.VERNACULAR_ROUND_CONFIG = {"max_steps": 7}  # the operator's number stands
    assert rounds.round_config("some-base", 60)["max_steps"] == 7


@pytest.mark.django_db(transaction=True)  # commits as a real request does, queueing at once
def test_with_redis_down_a_started_round_says_so_and_the_labels_stay(
    labeled, owner, client_for, redis_down
):
    from django.urls import reverse

    labels = Transcript.objects.filter(clip__project=labeled).count()
    client = client_for(owner)
    response = client.post(reverse("round_start", args=[labeled.pk]), follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert not any("queued with" in m for m in said)
    assert any(m.startswith("Round 1 was kept but not queued. The task queue") for m in said)
    started = TrainingRound.objects.get()
    assert started.status == "failed"
    assert "The task queue (Redis) was unreachable" in started.error
    assert Transcript.objects.filter(clip__project=labeled).count() == labels
    body = client.get(reverse("dashboard", args=[labeled.pk])).content.decode()
    assert "was unreachable" in body and "Retry</button>" in body

    again = client.post(reverse("round_retry", args=[labeled.pk, 1]), follow=True)
    assert "Round 1 is still not queued." in [str(m) for m in again.context["messages"]][0]


def test_a_failed_round_is_queued_again_from_its_snapshot(
    labeled, owner, django_capture_on_commit_callbacks
):
    started = rounds.round_start(project=labeled, user=owner)
    TrainingRound.objects.filter(pk=started.pk).update(status="failed", error="x", attempts=3)

    with django_capture_on_commit_callbacks() as sent:
        assert rounds.round_retry(training_round=started)

    started.refresh_from_db()
    assert (started.status, started.error, started.attempts) == ("queued", "", 0)
    assert len(sent) == 1 and "queued again by a manager" in started.log
    assert not rounds.round_retry(training_round=started)  # not failed any more


def test_a_retry_is_refused_while_another_round_is_active(labeled, owner):
    first = rounds.round_start(project=labeled, user=owner)
    TrainingRound.objects.filter(pk=first.pk).update(status="failed")
    rounds.round_start(project=labeled, user=owner)

    with pytest.raises(ValidationError, match="Another round is queued or running"):
        rounds.round_retry(training_round=first)


# --- the one recipe, self-training ---------------------------------------------------------


def test_the_apps_round_and_the_simulation_run_the_same_recipe(
    labeled, owner, tmp_path, monkeypatch
):
    from asr.corpus import CorpusConfig, EspeakNotAvailable, generate_corpus
    from asr.simulate import SimulationConfig, simulate

    calls = []
    real_run_round = asr.round.run_round

    def recording_run_round(data, config, output_dir, models, **options):
        calls.append((config, options["start_from_promoted"]))
        return real_run_round(data, config, output_dir, models, **options)

    monkeypatch.setattr(asr.round, "run_round", recording_run_round)
    first = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=first.pk, worker="w")
    try:
        corpus = generate_corpus(
            CorpusConfig(seed=1, clip_count=30, clips_per_recording=0), tmp_path, workers=1
        )
    except EspeakNotAvailable as error:
        pytest.skip(str(error))
    simulation = SimulationConfig(
        base="builtin:tiny",
        strategies=("random",),
        budgets_minutes=(0.3, 0.6),
        test_minutes=0.3,
        dev_minutes=0.2,
        round_overrides=TINY_ROUND | {"lm_order": 0},
    )
    simulate(corpus.manifest, tmp_path / "sim", simulation)

    assert len(calls) == 3  # the app's round, then the simulation's two
    assert all(isinstance(config, recipe.RoundConfig) for config, _ in calls)
    assert [from_promoted for _, from_promoted in calls] == [False, False, True]


def scored_pool(project, owner):
    """Round 1 trains and is promoted; its scoring run drafts the open clips. Returns the
    open clips, two of them set aside for test and dev since (drafts included)."""
    first = rounds.round_start(project=project, user=owner)
    round_run(round_id=first.pk, worker="w")
    scoring_run(scoring_id=ScoringRun.objects.get().pk)
    open_clips = list(Clip.objects.filter(project=project, status="unlabeled").order_by("pk"))
    assert all(clip.draft_confidence is not None for clip in open_clips)  # scoring wrote them
    # What self-training reads, as a sure model would have written it: the tiny test model's
    # own drafts are noise.
    Clip.objects.filter(pk__in=[c.pk for c in open_clips]).update(
        draft_text="habari yako", draft_confidence=1.0
    )
    Clip.objects.filter(pk=open_clips[0].pk).update(split="test")
    Clip.objects.filter(pk=open_clips[1].pk).update(split="dev")
    return open_clips


def test_self_training_never_takes_a_test_or_dev_clip_and_the_round_says_how_much_it_took(
    labeled, owner, settings, client_for, monkeypatch
):
    # every dev draft passes: the tiny model's are never within a real CER target
    settings.VERNACULAR_ROUND_CONFIG = TINY_ROUND | {"pseudo_max_dev_cer": 100.0}
    open_clips = scored_pool(labeled, owner)
    pools = []
    real_run_round = asr.round.run_round

    def recording_run_round(data, config, output_dir, models, **options):
        pools.append([draft.samples for draft in data.pool])
        return real_run_round(data, config, output_dir, models, **options)

    monkeypatch.setattr(asr.round, "run_round", recording_run_round)
    labeled.self_training = True
    labeled.save()
    second = rounds.round_start(project=labeled, user=owner)
    assert second.config["self_train"] is True
    round_run(round_id=second.pk, worker="w")
    second.refresh_from_db()
    assert second.status == "succeeded", second.error

    held_out = [trainer.clip_samples(c) for c in Clip.objects.filter(split__in=["test", "dev"])]
    [pool] = pools
    assert len(pool) == len(open_clips) - 2
    for samples in pool:
        assert not any(
            len(samples) == len(other) and np.array_equal(samples, other) for other in held_out
        )
    # a clip that trained a model is never drawn for test or dev afterwards
    assert {c.split for c in Clip.objects.filter(pk__in=[c.pk for c in open_clips[2:]])} == {
        "train"
    }
    version = second.version
    minutes = sum(c.duration_seconds for c in open_clips[2:]) / 60
    assert version.recipe["pseudo_clips"] == len(pool)
    assert version.recipe["pseudo_minutes"] == pytest.approx(minutes, abs=0.01)
    assert f"self-training: {len(pool)} pool clips ({minutes:.1f} min)" in second.log

    from training.exports import model_card

    assert (
        f"- Self-training: {version.recipe['pseudo_minutes']:.1f} minutes ({len(pool)} clips)"
        in (model_card(version))
    )
    from django.urls import reverse

    page = client_for(owner).get(reverse("model_version", args=[labeled.pk, second.number]))
    assert (
        f"{version.recipe['pseudo_minutes']:.1f} minutes ({len(pool)} clips)"
        in page.content.decode()
    )


def test_without_self_training_a_round_trains_on_labels_only_and_says_so(
    labeled, owner, client_for
):
    scored_pool(labeled, owner)
    second = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=second.pk, worker="w")
    second.refresh_from_db()
    assert second.version.recipe["pseudo_clips"] == 0
    assert "self-training" not in second.log

    from training.exports import model_card

    assert "- Self-training: none (trained on labeled clips only)" in model_card(second.version)


def test_a_round_page_says_when_a_collapsed_run_was_recovered(labeled, owner, client_for):
    from django.urls import reverse

    first = rounds.round_start(project=labeled, user=owner)
    round_run(round_id=first.pk, worker="w")
    version = ModelVersion.objects.get()
    version.recipe = {
        "attempts": [
            {"start": "fresh", "seed": 0, "learning_rate": 0.003, "collapsed": "stuck: x"},
            {"start": "promoted", "seed": 1, "learning_rate": 0.001, "collapsed": ""},
        ],
        "recovered": True,
    }
    version.save()
    page = client_for(owner).get(reverse("model_version", args=[labeled.pk, 1]))
    assert (
        "The first run collapsed (stuck: x); attempt 2, from the promoted model"
        in page.content.decode()
    )
