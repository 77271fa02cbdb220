"""Transcript.aligned: a line placed from an uploaded untimed text, not typed. Existing ones
(the transcripts training.worker.aligner wrote on recordings uploaded with a text) are marked
too, so those still waiting for review stop counting for training until someone accepts
them; accepted ones train as before."""

from django.db import migrations, models
from django.db.models import F


def mark_aligned(apps, schema_editor):
    Transcript = apps.get_model("labeling", "Transcript")
    Recording = apps.get_model("labeling", "Recording")
    with_text = Recording.objects.exclude(untimed_lines=[]).values("pk")
    # what the aligner wrote: the uploader's, before it marked the recording ready (a line
    # typed later by someone, after a rejection sent the clip back, is not one)
    written = Transcript.objects.filter(
        clip__recording__in=with_text,
        edit_of__isnull=True,
        author=F("clip__recording__uploaded_by"),
        created_at__lte=F("clip__recording__ingested_at"),
    )
    pks = list(written.values_list("pk", flat=True))
    Transcript.objects.filter(pk__in=pks).update(aligned=True)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0020_recording_speaker"),
    ]

    operations = [
        migrations.AddField(
            model_name="transcript",
            name="aligned",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_aligned, migrations.RunPython.noop),
    ]
