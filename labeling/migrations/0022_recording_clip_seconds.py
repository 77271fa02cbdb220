"""Recording.clip_seconds: the seconds of clips cut from each recording, kept on its row so
that the test and dev draw (labeling.selectors.split_draw) reads recordings, not every clip,
at each lease; filled from the clips already cut. And an index for whether a recording has
clips in a set."""

from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Cast, Coalesce

SAMPLE_RATE = 16_000


def count_clip_seconds(apps, schema_editor):
    Recording = apps.get_model("labeling", "Recording")
    Clip = apps.get_model("labeling", "Clip")
    samples = (
        Clip.objects.filter(recording=OuterRef("pk"))
        .order_by()
        .values("recording")
        .annotate(total=Sum(F("end_sample") - F("start_sample")))
        .values("total")
    )
    seconds = Cast(Coalesce(Subquery(samples), 0), models.FloatField()) / SAMPLE_RATE
    Recording.objects.update(clip_seconds=seconds)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0021_transcript_aligned"),
    ]

    operations = [
        migrations.AddField(
            model_name="recording",
            name="clip_seconds",
            field=models.FloatField(default=0.0),
        ),
        migrations.RunPython(count_clip_seconds, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="clip",
            index=models.Index(fields=["recording", "split"], name="clip_recording_split"),
        ),
    ]
