import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Project


class TrainingRound(models.Model):
    """One fine-tuning run on a snapshot of the labeled set, on the `gpu` queue."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker on the gpu queue"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Live progress, written by the worker.
    phase = models.CharField(max_length=40, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    # The snapshot this round trains and is judged on.
    # What it fine-tuned from: a base model spec (asr.recipe.base_kind), or "version:N", the
    # promoted version of round N, continued (continues_round)
    base = models.CharField(max_length=500, help_text="What it fine-tuned from.")
    train_clip_ids = models.JSONField(default=list)
    dev_clip_ids = models.JSONField(default=list)
    test_clip_ids = models.JSONField(default=list)
    labeled_minutes = models.FloatField(default=0.0)  # train, dev and test together
    # What the model learns from: the chart's x axis (None for rounds from before it was kept).
    train_minutes = models.FloatField(null=True, blank=True)
    config = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_number_unique"),
            # The database itself refuses a second queued or running round for a project.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_round_per_project",
            ),
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.project} round {self.number}"

    @staticmethod
    def continuing(round_number: int) -> str:
        """The `base` of a round that continues round `round_number`'s version."""
        return f"version:{round_number}"

    @property
    def continues_round(self) -> int | None:
        """The round whose version this one continues, or None: a new head on `base`."""
        prefix, _, number = self.base.partition(":")
        return int(number) if prefix == "version" and number.isdigit() else None

    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def progress_fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def finished_version(self) -> "ModelVersion | None":
        """The model this round produced, None while it runs or if it failed."""
        try:
            return self.version
        except ModelVersion.DoesNotExist:
            return None

    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class OfflineStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker on the gpu queue"
    BUILDING = "building", "Being built"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelVersion(models.Model):
    """What a successful round produced: a transformers directory and its scores."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    round = models.OneToOneField(TrainingRound, on_delete=models.CASCADE, related_name="version")
    directory = models.CharField(max_length=500)
    labeled_minutes = models.FloatField()
    test_wer = models.FloatField(null=True)
    test_cer = models.FloatField(null=True)
    # the same test set decoded with a lexicon + word 3-gram LM of the round's training
    # transcripts, or of them and the pool's drafts where dev preferred that (asr.lm); null
    # without a test set or without flashlight-text
    test_wer_lm = models.FloatField(null=True)
    test_cer_lm = models.FloatField(null=True)
    dev_cer = models.FloatField(null=True)
    test_clips = models.PositiveIntegerField(default=0)
    # One dict per test clip: clip id, reference, hypothesis, wer, cer.
    test_details = models.JSONField(default=list)
    # How the round went (asr.round.RoundResult.summary): attempts and recoveries, the
    # pseudo-labeled minutes and their threshold, the LM decision.
    recipe = models.JSONField(default=dict)
    promoted = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The offline export (ONNX files and a runner, asr.export), built on request by a gpu
    # worker into offline_directory(); "" until someone asks for it.
    offline_status = models.CharField(
        max_length=20, choices=OfflineStatus.choices, blank=True, default=""
    )
    offline_error = models.TextField(blank=True)
    offline_requested_at = models.DateTimeField(null=True, blank=True)
    offline_bytes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-round__number"]

    def __str__(self) -> str:
        return f"{self.project} model {self.round.number}"

    def is_whisper_head(self) -> bool:
        """A Whisper-encoder version saves its head only (asr.whisper), not a transformers folder."""
        return (Path(self.directory) / "whisper_ctc.json").is_file()

    def offline_directory(self) -> Path:
        """Beside the model's own folder, so the model zip never carries the export."""
        return Path(self.directory).parent / "offline"

    def collapse_note(self) -> str:
        """What a collapsed run led to, in words; "" when the first attempt trained well."""
        attempts = self.recipe.get("attempts", [])
        if len(attempts) < 2 and not self.recipe.get("collapsed"):
            return ""
        first = attempts[0]["collapsed"] if attempts else ""
        if self.recipe.get("recovered"):
            last = attempts[-1]
            start = "the promoted model" if last["start"] == "promoted" else "a new head"
            return (
                f"The first run collapsed ({first}); attempt {len(attempts)}, from {start} "
                f"at learning rate {last['learning_rate']:g}, trained normally."
            )
        return (
            f"Every run collapsed (first: {first}), after {len(attempts)} attempts; "
            "this model is not promoted. More or other labels usually help."
        )

    def self_training_note(self) -> str:
        """How many pseudo-labeled minutes trained, at which confidence; "" without them."""
        if not self.recipe.get("pseudo_clips"):
            return ""
        return (
            f"{self.recipe['pseudo_minutes']:.1f} minutes ({self.recipe['pseudo_clips']} clips) "
            f"of the model's own drafts of unlabeled clips, at confidence "
            f">= {self.recipe['pseudo_threshold']:.3f} (chosen on dev)"
        )


class ScoringRun(models.Model):
    """The promoted model reads every unlabeled clip: drafts, uncertainty, queue order."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker on the gpu queue"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="scoring_runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    clips_total = models.PositiveIntegerField(default=0)
    clips_done = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.project} scoring with {self.model_version}"


def transcription_upload_path(job: "TranscriptionJob", filename: str) -> str:
    return f"transcribe/{job.project_id}/{uuid.uuid4().hex}"


class TranscriptionJob(models.Model):
    """A recording someone wants transcribed by the project's promoted model."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker on the gpu queue"
        RUNNING = "running", "Transcribing"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="transcription_jobs"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    original_name = models.CharField(max_length=255)
    audio = models.FileField(upload_to=transcription_upload_path, max_length=255)
    duration_seconds = models.FloatField(default=0.0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    text = models.TextField(blank=True)
    segments = models.JSONField(default=list)  # [{"start": s, "end": s, "text": ...}]
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    def as_json(self) -> dict:
        return {
            "id": self.pk,
            "status": self.status,
            "file": self.original_name,
            "duration": round(self.duration_seconds, 2),
            "model_round": self.model_version.round.number if self.model_version else None,
            "text": self.text,
            "segments": self.segments,
            "error": self.error,
        }


class ApiToken(models.Model):
    """A personal token for the JSON API. Only its hash is stored; it is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
