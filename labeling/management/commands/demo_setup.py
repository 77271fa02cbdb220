"""Creates the demo manager account and demo project, and fills the project with the demo
corpus's recordings, cut into clips. Safe to run again: what exists is kept as it is.

The demo is meant to be tried in five minutes by someone who does not speak its language, so
its synthetic corpus's true text comes along as an answer key (shown on the transcription
page of a demo project only). The test set, the dev set and a first few training minutes are
labeled from it through the app's own queue, by an account named for that, and a first
round is queued: once the gpu worker has trained it, the chart, the drafts and the error
browser are all there."""

import json
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand

from asr.corpus import CorpusConfig, EspeakNotAvailable, generate_corpus
from labeling import ingest, queue, services
from labeling.models import SAMPLE_RATE, Clip, Membership, Project, Role
from labeling.selectors import clip_minutes
from labeling.services import handover_password
from training.rounds import round_start

DEMO_USERNAME = "demo"
ANSWER_KEY_USERNAME = "demo-answer-key"  # the annotator of the labels made from the answer key
DEMO_PROJECT = {
    "name": "Demo: Swahili",
    "language_code": "sw",
    "alphabet": "abcdefghijklmnoprstuvwyz'",
    "lowercase": True,
    "strip_chars": '.,;:!?"“”«»()[]',
}
# Of the demo's audio: the test and dev sets (3 and 1 minutes of the default 15), and the
# training minutes labeled from the answer key for the first round. The rest is left to try.
TEST_SHARE, DEV_SHARE, FIRST_ROUND_SHARE = 0.2, 1 / 15, 0.2


class Command(BaseCommand):
    help = "Create the demo account and project, and fill it with the synthetic demo corpus."

    def add_arguments(self, parser):
        parser.add_argument(
            "--corpus-clips",
            type=int,
            default=int(os.environ.get("VERNACULAR_DEMO_CLIPS", "240")),
            help="utterances of synthetic speech for the demo recordings (0: none)",
        )
        parser.add_argument(
            "--no-first-round",
            dest="first_round",
            action="store_false",
            default=os.environ.get("VERNACULAR_DEMO_FIRST_ROUND", "1") != "0",
            help="label from the answer key, but queue no round (VERNACULAR_DEMO_FIRST_ROUND=0)",
        )

    def handle(self, *args, corpus_clips: int, first_round: bool, **options):
        User = get_user_model()
        password_file = settings.DATA_DIR / "demo-password"
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            password = handover_password()
            user = User.objects.create_user(username=DEMO_USERNAME, password=password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            note = ""
        else:
            stored = password_file.read_text().strip() if password_file.exists() else None
            password = stored or "(set before; not stored here)"
            note = "  (unless you changed it since)"

        # The demo account's own project: another user's of the same name is left alone.
        project = Project.objects.filter(name__iexact=DEMO_PROJECT["name"], created_by=user).first()
        if project is None:
            project = services.project_create(**DEMO_PROJECT, created_by=user)
            Project.objects.filter(pk=project.pk).update(is_demo=True)
            project.refresh_from_db()
        if corpus_clips and not project.recordings.exists():
            self._fill(project, user, corpus_clips, first_round)
        self.stdout.write(f"\n  Demo account: {DEMO_USERNAME}\n  Password    {password}{note}\n")

    def _fill(self, project: Project, user, clips: int, first_round: bool) -> None:
        """Synthetic Swahili-like speech (espeak-ng, seeded): recordings of about a minute
        (test and dev sets are drawn by whole recordings, so a few short ones), cut into clips
        here (the worker would, but the answer key needs the clips), each clip with its true
        text; then the first labels and round."""
        directory = settings.DATA_DIR / "demo-corpus"
        self.stdout.write(f"  Making the demo recordings ({clips} utterances) in {directory} ...")
        try:
            summary = generate_corpus(
                CorpusConfig(seed=0, clip_count=clips, clips_per_recording=10), directory
            )
        except EspeakNotAvailable as error:
            self.stderr.write(f"  No demo recordings: {error}")
            return
        limits = ingest.UploadLimits.from_settings()
        for path in sorted((directory / "recordings").glob("*.wav")):
            with path.open("rb") as handle:
                recording = ingest.recording_upload(
                    project=project,
                    uploaded=File(handle, name=path.name),
                    user=user,
                    limits=limits,
                    queue=False,
                )
            ingest.recording_ingest(recording_id=recording.pk)
        minutes = clip_minutes(project.clips.all())  # the targets are minutes of clips
        Project.objects.filter(pk=project.pk).update(
            test_minutes_target=round(TEST_SHARE * minutes, 1),
            dev_minutes_target=round(DEV_SHARE * minutes, 1),
        )
        project.refresh_from_db()
        keyed = answer_keys_store(project, summary.recordings_truth)
        self.stdout.write(
            f"  {summary.recording_count} recordings cut into {project.clips.count()} clips "
            f"({minutes:.0f} min), {keyed} with the answer key."
        )
        labeled = label_from_answer_key(project, FIRST_ROUND_SHARE * minutes)
        self.stdout.write(
            f"  Labeled from the answer key as {ANSWER_KEY_USERNAME}: {labeled} clips "
            f"(test {project.test_minutes_target} min, dev {project.dev_minutes_target} min, "
            f"and {FIRST_ROUND_SHARE * minutes:.1f} training minutes)."
        )
        if not first_round:
            return
        try:
            training_round = round_start(project=project, user=user)
        except ValidationError as error:
            self.stderr.write(f"  No first round: {' '.join(error.messages)}")
            return
        training_round.refresh_from_db()
        if training_round.status == training_round.Status.FAILED:
            self.stderr.write(f"  The first round could not be queued: {training_round.error}")
        else:
            self.stdout.write("  Round 1 is queued: the gpu worker trains it in a few minutes.")


def answer_keys_store(project: Project, truth_path: Path | None) -> int:
    """Each clip's true text: the corpus's utterances whose middle lies within the clip, in
    order. Returns how many clips got one."""
    if truth_path is None:
        return 0
    utterances: dict[str, list[tuple[float, str]]] = {}
    for line in truth_path.read_text().splitlines():
        row = json.loads(line)
        middle = row["offset"] + row["duration"] / 2
        utterances.setdefault(Path(row["recording"]).name, []).append((middle, row["text"]))
    keyed = []
    for clip in project.clips.select_related("recording"):
        start, end = clip.start_sample / SAMPLE_RATE, clip.end_sample / SAMPLE_RATE
        said = utterances.get(clip.recording.original_name, [])
        clip.answer_key = " ".join(text for middle, text in sorted(said) if start <= middle < end)
        if clip.answer_key:
            keyed.append(clip)
    Clip.objects.bulk_update(keyed, ["answer_key"])
    return len(keyed)


def label_from_answer_key(project: Project, train_minutes: float) -> int:
    """Transcribe through the queue, as an annotator would, until the test and dev sets are
    full and `train_minutes` of training clips are labeled. Returns the clips labeled."""
    annotator, _ = get_user_model().objects.get_or_create(username=ANSWER_KEY_USERNAME)
    if annotator.has_usable_password():
        annotator.set_unusable_password()  # nobody logs in as it
        annotator.save()
    Membership.objects.get_or_create(
        project=project, user=annotator, defaults={"role": Role.ANNOTATOR}
    )
    labeled = 0
    while True:
        training = project.clips.filter(split=Clip.Split.TRAIN).exclude(
            status=Clip.Status.UNLABELED
        )
        if queue.split_wanted(project) == Clip.Split.TRAIN and (
            clip_minutes(training) >= train_minutes
        ):
            return labeled
        clip = queue.clip_lease_next(project=project, user=annotator)
        if clip is None:
            return labeled
        if not clip.answer_key:  # a clip between utterances: nothing was said in it
            queue.clip_skip(clip=clip, user=annotator, lease_token=clip.lease_token)
            continue
        queue.transcript_submit(
            clip=clip, user=annotator, lease_token=clip.lease_token, text=clip.answer_key
        )
        labeled += 1
