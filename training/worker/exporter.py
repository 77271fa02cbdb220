"""The gpu worker's side of offline exports: a version's ONNX files and runner (asr.export)."""

import shutil
import uuid

from django.utils import timezone

from asr.export import export_offline
from training import exports
from training.models import ModelVersion, OfflineStatus
from training.worker import base_models


def offline_export_run(*, version_id: int) -> None:
    claimed = ModelVersion.objects.filter(
        pk=version_id, offline_status=OfflineStatus.QUEUED
    ).update(offline_status=OfflineStatus.BUILDING, offline_requested_at=timezone.now())
    if not claimed:
        return
    version = ModelVersion.objects.select_related("project", "round").get(pk=version_id)

    def fail(message: str) -> None:
        ModelVersion.objects.filter(pk=version_id).update(
            offline_status=OfflineStatus.FAILED, offline_error=message
        )

    problem = exports.model_files_problem(version)
    if not problem:
        try:
            model = base_models.load_version(version.directory)
        except Exception:  # a damaged file: what the card cannot load, the export cannot
            problem = exports.MODEL_FILES_MISSING
    if problem:
        fail(problem)
        return
    target = version.offline_directory()
    building = target.with_name(f"offline.building-{uuid.uuid4().hex[:8]}")
    try:
        export_offline(model, building, version.directory, card_header=exports.model_facts(version))
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
    except Exception as error:
        shutil.rmtree(building, ignore_errors=True)
        fail(f"The export failed ({type(error).__name__}); the worker's log has the details.")
        raise
    ModelVersion.objects.filter(pk=version_id).update(
        offline_status=OfflineStatus.READY,
        offline_error="",
        offline_bytes=sum(path.stat().st_size for path in target.iterdir()),
    )
