"""What runs on a gpu worker (torch loaded): a training round (`trainer`), the pool's scoring
(`scoring`), transcription of uploads (`transcriber`), alignment of untimed texts
(`aligner`), the offline export (`exporter`), and the models they load (`base_models`).
Each is called by one task in training/tasks.py, which claims its row first; no web request
imports this package."""
