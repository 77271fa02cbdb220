import random
import re
import unicodedata
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import ExpressionWrapper, F, Q
from django.db.models.functions import Lower

from asr.text import TextRules

SAMPLE_RATE = 16_000  # every clip is stored as 16 kHz mono, as asr.audio decodes it


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"


# A higher rank may do everything a lower one may.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}


class Project(models.Model):
    """One language or dialect: its recordings, labels and models."""

    name = models.CharField(max_length=100)
    language_code = models.CharField(
        max_length=35, help_text="BCP 47 tag, e.g. sw, quz, gd, nds-NL."
    )
    alphabet = models.TextField(
        help_text="Every character a transcript may use, besides the space between words."
    )
    lowercase = models.BooleanField(
        default=True, help_text="Lowercase transcripts before training and scoring."
    )
    strip_chars = models.CharField(
        max_length=200,
        blank=True,
        default='.,;:!?"“”«»()[]',
        help_text="Characters removed from transcripts before training, e.g. punctuation.",
    )
    test_minutes_target = models.FloatField(
        default=10.0,
        help_text="Minutes of randomly chosen clips labeled first and kept out of training, "
        "to measure every model on the same ground.",
    )
    dev_minutes_target = models.FloatField(
        default=5.0, help_text="Minutes of random clips for choosing when to stop training."
    )

    class SplitBy(models.TextChoices):
        RECORDING = "recording", "By recording: a recording's clips all go to one set"
        CLIP = "clip", "By clip: any clip may go to any set (voices then leak into the test)"

    split_by = models.CharField(
        max_length=20,
        choices=SplitBy.choices,
        default=SplitBy.RECORDING,
        help_text="How test and dev clips are drawn. By recording, the model is tested on "
        "recordings (voices, sessions) it never trained on; with fewer than 3 recordings the "
        "draw is by clip until there are more.",
    )
    clip_min_seconds = models.FloatField(default=1.0)
    clip_max_seconds = models.FloatField(default=15.0)
    lease_minutes = models.PositiveIntegerField(
        default=20, help_text="How long a clip stays reserved for the annotator who opened it."
    )
    base_model = models.CharField(
        max_length=500,
        blank=True,
        help_text="Leave empty for the built-in default, or give a local transformers "
        "checkpoint directory (XLS-R, MMS, ...) or a hub id (only with internet).",
    )
    train_from_promoted = models.BooleanField(
        default=True,
        help_text="Continue from the last promoted model (else start from the base each round).",
    )
    auto_round_minutes = models.FloatField(
        null=True,
        blank=True,
        help_text="Start a round by itself after this many new labeled minutes (empty = off).",
    )
    second_listener = models.BooleanField(
        default=False,
        help_text="A transcript counts once a second person agrees (as Common Voice's two "
        "votes): the queue asks others to listen and agree or correct it first, a "
        "disagreement goes to review, and only agreed or reviewed transcripts are trained on.",
    )
    train_on_accepted_only = models.BooleanField(
        default=False,
        help_text="Train only on transcripts a reviewer accepted (otherwise on all submitted).",
    )

    class Selection(models.TextChoices):
        DIVERSE = "diverse", "Uncertain clips, unlike each other"
        NEW_WORDS = "new-words", "Clips whose drafts hold words the labels lack"

    self_training = models.BooleanField(
        default=False,
        help_text="Rounds also train on the model's most confident drafts of unlabeled clips "
        "(never test or dev clips), at a confidence the dev set chooses (docs/benchmarks.md).",
    )
    selection = models.CharField(
        max_length=20,
        choices=Selection.choices,
        default=Selection.DIVERSE,
        help_text="How the queue orders the pool after each round (docs/benchmarks.md compares "
        "them: words the labels lack gave the lower WER with the language model).",
    )
    # Only `manage.py demo_setup` makes a demo project (no form sets it): its clips carry the
    # synthetic corpus's true text as an answer key, shown on the transcription page.
    is_demo = models.BooleanField(default=False, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Per owner: a name taken by someone else's project must not be an error that
            # tells a user that project exists.
            models.UniqueConstraint(
                Lower("name"), "created_by", name="project_name_unique_per_owner_ci"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def counts_accepted_only(self) -> bool:
        """Only accepted transcripts count: reviewed, or agreed by a second listener."""
        return self.train_on_accepted_only or self.second_listener

    def text_rules(self) -> TextRules:
        return TextRules(
            lowercase=self.lowercase, strip_characters=self.strip_chars, alphabet=self.alphabet
        )

    def alphabet_display(self) -> list[str]:
        """The alphabet for showing: a combining mark sits on a dotted circle, as in print."""
        return [f"\u25cc{ch}" if unicodedata.combining(ch) else ch for ch in self.alphabet_chars()]

    def alphabet_chars(self) -> list[str]:
        """The allowed characters, NFC-normalized, in the order the manager typed them."""
        text = unicodedata.normalize("NFC", self.alphabet)
        return list(dict.fromkeys(ch for ch in text if not ch.isspace()))


class Invitation(models.Model):
    """A manager's offer of a role, waiting for the invitee to accept it.

    Keyed by username, not by account: inviting a name that has no account looks exactly
    like inviting one that has, so the members page tells nobody which accounts exist.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "username"], name="invitation_unique"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.username} invited as {self.role} to {self.project}"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def can_review(self) -> bool:
        return self.has_role(Role.REVIEWER)

    @property
    def can_manage(self) -> bool:
        return self.has_role(Role.MANAGER)


def random_key() -> float:
    return random.random()


def recording_upload_path(recording: "Recording", filename: str) -> str:
    # Never a user path part: a generated name, the extension only as a hint for ffmpeg.
    suffix = Path(filename).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
    return f"recordings/{recording.project_id}/{uuid.uuid4().hex}{suffix}"


class Recording(models.Model):
    """One uploaded file, as it came, before it is cut into clips."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        INGESTING = "ingesting", "Cutting into clips"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="recordings")
    original_name = models.CharField(max_length=255)
    audio = models.FileField(upload_to=recording_upload_path, max_length=255)
    # Who speaks, or which session it is, where the upload or import says: recordings that
    # share one are drawn into test, dev or training together (labeling.selectors.split_draw).
    speaker = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    duration_seconds = models.FloatField()
    # Seconds of clips cut from it (fewer than it lasts: pauses are not cut), kept by every
    # writer of clips (labeling.ingest.clip_seconds_add): the test and dev draw plans with
    # these at every lease, which cannot afford to sum the clips of every recording.
    clip_seconds = models.FloatField(default=0.0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    # What the uploader should know about a file that was kept, e.g. that it was damaged.
    note = models.TextField(blank=True)
    # From an ELAN or Praat file uploaded with it: the tier imported, and its annotations
    # ([{"start": s, "end": s, "text": ...}]), which the ingest cuts into labeled clips.
    tier_name = models.CharField(max_length=200, blank=True)
    annotations = models.JSONField(default=list, blank=True)
    # asr.fingerprint of the decoded audio, compared with every later upload (recordings from
    # before it was kept have none, and are not compared); and the stretches of this
    # recording that repeat an earlier one ([{"start": s, "end": s, "of": name}]), which are
    # not cut into clips.
    fingerprint = models.BinaryField(blank=True, default=b"")
    # An untimed transcript uploaded with it (one utterance a line, normalized): a gpu worker
    # aligns it with the promoted model (training/worker/aligner.py) instead of cutting at pauses.
    untimed_lines = models.JSONField(default=list, blank=True)
    repeats = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="recording_unique_content"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name

    def is_finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)


# Scored clips first, best first; then unscored ones. Written as "IS NULL, then DESC" rather
# than DESC NULLS LAST because neither database can index the latter the same way (SQLite
# has no NULLS LAST in an index; PostgreSQL's DESC index puts NULLs first).
UNSCORED_LAST = ExpressionWrapper(
    Q(selection_score__isnull=True), output_field=models.BooleanField()
)


class Clip(models.Model):
    """A 1-15 s stretch of a recording: the unit that is transcribed, scored and trained on."""

    class Split(models.TextChoices):
        UNASSIGNED = "", "Not yet"
        TEST = "test", "Test"
        DEV = "dev", "Dev"
        TRAIN = "train", "Train"

    class Status(models.TextChoices):
        UNLABELED = "unlabeled", "Unlabeled"
        SUBMITTED = "submitted", "Submitted"
        ACCEPTED = "accepted", "Accepted"
        FLAGGED = "flagged", "Flagged"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="clips")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="clips")
    start_sample = models.BigIntegerField()
    end_sample = models.BigIntegerField()
    audio = models.FileField(max_length=255)
    split = models.CharField(max_length=10, choices=Split.choices, default="", blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNLABELED)
    # A stable random order: the random test/dev picks and the cold-start queue use it.
    random_key = models.FloatField(default=random_key, db_index=True)
    # Filled by the latest scoring run (training app): higher = more worth labeling next.
    selection_score = models.FloatField(null=True, blank=True, db_index=True)
    draft_text = models.TextField(blank=True)  # what the annotator is shown
    # The same clip decoded letter by letter: what language models and the new-words picker
    # read. It differs from draft_text when the promoted version decodes with its LM.
    draft_greedy = models.TextField(blank=True)
    # How sure the model was of its draft (asr.round.draft_confidence): self-training reads it.
    draft_confidence = models.FloatField(null=True, blank=True)
    # Where the draft came from, shown next to it: the round whose model wrote it, and whether
    # it was decoded with that round's lexicon and LM or letter by letter.
    draft_round = models.PositiveIntegerField(null=True, blank=True)
    draft_with_lm = models.BooleanField(default=False)
    # A demo project's true text of the clip (Project.is_demo); empty everywhere else.
    answer_key = models.TextField(blank=True, editable=False)
    lease_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    skipped_by = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    # What the lease holder has typed and not sent yet, kept as they type: another machine (or
    # a browser that lost its storage) gets it back with the lease. Cleared when the lease ends.
    lease_text = models.TextField(blank=True)
    # "Later": the clip is not served to this user again until then (others may take it).
    postponed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    postponed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "start_sample"], name="clip_unique_span"),
        ]
        indexes = [
            models.Index(fields=["project", "status", "split"]),
            # Whether a recording has clips in a set, one probe each (selectors.split_draw).
            models.Index(fields=["recording", "split"], name="clip_recording_split"),
            # The minutes in test and dev (labeling.selectors.evaluation_minutes), read at every lease.
            models.Index(fields=["project", "split", "status"], name="clip_split_minutes"),
            # The queue's two orders (labeling.queue.queue_candidates): a lease reads the
            # first rows of one of these instead of sorting every open clip.
            models.Index(
                fields=["project", "status", "split", "random_key"], name="clip_queue_random"
            ),
            models.Index(
                F("project"),
                F("status"),
                UNSCORED_LAST,
                F("selection_score").desc(),
                F("random_key"),
                name="clip_queue_scored",
            ),
        ]
        ordering = ["recording_id", "start_sample"]

    def __str__(self) -> str:
        return f"{self.recording} {self.start_seconds:.1f}-{self.end_seconds:.1f}s"

    @property
    def start_seconds(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.end_sample / SAMPLE_RATE

    @property
    def duration_seconds(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE


class Transcript(models.Model):
    """One submission for a clip. Never overwritten: edits, undos and reviews add state."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn (undone)"
        SUPERSEDED = "superseded", "Superseded by a reviewer's edit"

    class Flag(models.TextChoices):
        NONE = "", "None"
        NOISE = "noise", "Noise or music"
        OTHER_LANGUAGE = "other_language", "Other language"
        UNINTELLIGIBLE = "unintelligible", "Unintelligible"
        NO_SPEECH = "no_speech", "No speech"

    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="transcripts")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="transcripts"
    )
    # The lease it was written under: a double submit of the same lease stores one transcript.
    lease_token = models.UUIDField()
    text = models.TextField(blank=True)
    draft_text = models.TextField(blank=True)
    flag = models.CharField(max_length=20, choices=Flag.choices, default="", blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBMITTED)
    # Another submission for the same clip exists: a reviewer decides.
    conflict = models.BooleanField(default=False)
    # Placed from an uploaded untimed text (training.worker.aligner), not typed: while it waits for
    # review it never trains, whatever the project's setting, and its uploader may review it.
    aligned = models.BooleanField(default=False)
    seconds_spent = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # A reviewer's corrected version points at the annotator's original.
    edit_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="edits"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["clip", "lease_token"], name="transcript_once_per_lease"
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.clip}: {self.text[:40]}"


class ClipEdit(models.Model):
    """A boundary edit on the transcription page: the clips it replaced (their spans, kept
    here: the audio can be cut again from the recording) and the clips it made."""

    class Kind(models.TextChoices):
        RESHAPE = "reshape", "Start or end moved"
        SPLIT = "split", "Split in two"
        MERGE = "merge", "Merged with the next clip"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="clip_edits")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="clip_edits")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    old_clip_ids = models.JSONField(default=list)
    old_spans = models.JSONField(default=list)  # [[start_sample, end_sample], ...]
    new_clip_ids = models.JSONField(default=list)
    split = models.CharField(max_length=10, blank=True)  # the clips' split: an edit keeps it
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: clips {self.old_clip_ids} -> {self.new_clip_ids}"


class KeyBindings(models.Model):
    """A person's own keys on the transcription page (labeling.hotkeys): only those that
    differ from the defaults, by action."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="key_bindings"
    )
    codes = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"keys of {self.user}"
