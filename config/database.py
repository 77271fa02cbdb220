"""The SQLite file holds every transcript and password hash: only its owner may read it."""

import os
from pathlib import Path


def restrict_sqlite_files(sender, connection, **kwargs) -> None:
    """connection_created handler: the database file and its WAL/shm companions made 0600.

    SQLite creates them with the process umask (0644 usually); chmod after the fact is
    enough because nothing has been written to them by the time the first query runs.
    """
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return
    for path in (Path(name), Path(name + "-wal"), Path(name + "-shm")):
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:
            pass  # another process's file (a worker's), or just removed: its owner fixes it
