"""Imports labeled data from a manifest on disk (the folder variant of the page's zip import)."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling.exchange import folder_import
from labeling.ingest import UploadLimits
from labeling.models import Project


class Command(BaseCommand):
    help = "Import a NeMo-style JSONL manifest and its audio into a project as accepted clips."

    def add_arguments(self, parser):
        parser.add_argument("manifest", type=Path)
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--user", required=True, help="username recorded as the importer")

    def handle(self, *args, manifest: Path, project: int, user: str, **options):
        if not manifest.is_file():
            raise CommandError(f"{manifest}: no such file")
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        importer = get_user_model().objects.filter(username=user).first()
        if importer is None:
            raise CommandError(f"No user called {user}.")
        report = folder_import(
            project=target, manifest=manifest, user=importer, limits=UploadLimits.from_settings()
        )
        for problem in report.problems:
            self.stderr.write(f"skipped {problem}")
        if report.stopped:
            self.stderr.write(report.stopped)
        self.stdout.write(f"{report.summary()} Into {target.name}.")
