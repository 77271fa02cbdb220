"""Fingerprints the recordings stored before uploads were fingerprinted (session 7), so that
an upload of the same audio in another format is caught against them too. Safe to run again:
recordings with a fingerprint are left as they are."""

from django.core.management.base import BaseCommand

from labeling.ingest import recording_fingerprint_backfill
from labeling.models import Recording


class Command(BaseCommand):
    help = "Fingerprint the recordings that have no audio fingerprint yet."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="only this project's recordings")

    def handle(self, *args, project: int | None, **options):
        missing = Recording.objects.filter(fingerprint=b"").order_by("pk")
        if project is not None:
            missing = missing.filter(project_id=project)
        done = unreadable = 0
        for recording in missing.iterator():
            if recording_fingerprint_backfill(recording=recording):
                done += 1
            else:
                unreadable += 1
                self.stderr.write(f"{recording.original_name}: its audio could not be read")
        self.stdout.write(f"{done} recordings fingerprinted, {unreadable} unreadable.")
