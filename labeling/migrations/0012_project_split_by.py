"""Test and dev drawn by whole recordings, for new projects.

Projects that exist already keep drawing by clip (split_by = "clip"): their test and dev sets
are frozen as they are, and drawing the rest by recording could not undo clips that already
straddle. Their managers can switch in Settings; the dashboard says which draw a project uses.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labeling", "0011_recording_annotations_fingerprint")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="split_by",
            field=models.CharField(default="clip", max_length=20),
        ),
        migrations.AlterField(
            model_name="project",
            name="split_by",
            field=models.CharField(
                choices=[
                    ("recording", "By recording: a recording's clips all go to one set"),
                    (
                        "clip",
                        "By clip: any clip may go to any set (voices then leak into the test)",
                    ),
                ],
                default="recording",
                help_text="How test and dev clips are drawn. By recording, the model is tested "
                "on recordings (voices, sessions) it never trained on; with fewer than 3 "
                "recordings the draw is by clip until there are more.",
                max_length=20,
            ),
        ),
    ]
