"""Transcript.aligned: a line placed from an uploaded untimed text, not typed. Existing ones
(the clips of recordings uploaded with a text, as training.worker.aligner wrote them) are marked
too, so those still waiting for review stop counting for training until someone accepts
them; accepted ones train as before."""

from django.db import migrations, models


def mark_aligned(apps, schema_editor):
    Transcript = apps.get_model("labeling", "Transcript")
    Recording = apps.get_model("labeling", "Recording")
    with_text = Recording.objects.exclude(untimed_lines=[]).values("pk")
    Transcript.objects.filter(clip__recording__in=with_text, edit_of__isnull=True).filter(
        reviewed_by__isnull=True
    ).update(aligned=True)


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
