"""Creates the demo manager account and demo project, and fills the project with the demo
corpus's recordings. Safe to run again: what exists is kept as it is."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand

from asr.corpus import CorpusConfig, EspeakNotAvailable, generate_corpus
from labeling import ingest, services
from labeling.models import Project
from labeling.services import handover_password

DEMO_USERNAME = "demo"
DEMO_PROJECT = {
    "name": "Demo: Swahili",
    "language_code": "sw",
    "alphabet": "abcdefghijklmnoprstuvwyz'",
    "lowercase": True,
    "strip_chars": '.,;:!?"“”«»()[]',
    # The demo pool is 15 minutes: a 3-minute test and 1-minute dev set leave most of it to
    # train on, and a first round within minutes of labeling.
    "test_minutes_target": 3.0,
    "dev_minutes_target": 1.0,
}


class Command(BaseCommand):
    help = "Create the demo account and project, and fill it with the synthetic demo corpus."

    def add_arguments(self, parser):
        parser.add_argument(
            "--corpus-clips",
            type=int,
            default=int(os.environ.get("VERNACULAR_DEMO_CLIPS", "240")),
            help="utterances of synthetic speech for the demo recordings (0: none)",
        )

    def handle(self, *args, corpus_clips: int, **options):
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
        if corpus_clips and not project.recordings.exists():
            self._fill(project, user, corpus_clips)
        self.stdout.write(f"\n  Demo account: {DEMO_USERNAME}\n  Password    {password}{note}\n")

    def _fill(self, project: Project, user, clips: int) -> None:
        """Synthetic Swahili-like speech (espeak-ng, seeded): long recordings to cut and label."""
        directory = settings.DATA_DIR / "demo-corpus"
        self.stdout.write(f"  Making the demo recordings ({clips} utterances) in {directory} ...")
        try:
            summary = generate_corpus(CorpusConfig(seed=0, clip_count=clips), directory)
        except EspeakNotAvailable as error:
            self.stderr.write(f"  No demo recordings: {error}")
            return
        limits = ingest.UploadLimits.from_settings()
        for path in sorted((directory / "recordings").glob("*.wav")):
            with path.open("rb") as handle:
                ingest.recording_upload(
                    project=project, uploaded=File(handle, name=path.name), user=user, limits=limits
                )
        self.stdout.write(
            f"  {summary.recording_count} recordings ({summary.seconds / 60:.0f} min) uploaded; "
            "the default worker is cutting them into clips."
        )
