from django.apps import AppConfig
from django.db.backends.signals import connection_created


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        from config.database import restrict_sqlite_files

        connection_created.connect(restrict_sqlite_files, dispatch_uid="restrict_sqlite_files")
