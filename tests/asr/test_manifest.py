import json

import pytest

from asr.manifest import ManifestEntry, ManifestError, read_manifest, write_manifest


def test_paths_under_the_manifest_are_written_relative_and_read_back_resolved(tmp_path):
    (tmp_path / "clips").mkdir()
    inside = ManifestEntry(tmp_path / "clips" / "a.wav", 1.23456, "habari", {"speaker": "s1"})
    outside = ManifestEntry(tmp_path.parent / "b.wav", None, "")
    write_manifest([inside, outside], tmp_path / "manifest.jsonl")

    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert lines[0] == {
        "audio_filepath": "clips/a.wav",
        "duration": 1.235,
        "text": "habari",
        "speaker": "s1",
    }
    assert lines[1]["audio_filepath"] == str((tmp_path.parent / "b.wav").resolve())

    entries = read_manifest(tmp_path / "manifest.jsonl")
    assert entries[0].audio_filepath.resolve() == (tmp_path / "clips" / "a.wav").resolve()
    assert entries[0].extra == {"speaker": "s1"}
    assert entries[1].audio_filepath.resolve() == (tmp_path.parent / "b.wav").resolve()


@pytest.mark.parametrize(
    "line, message",
    [
        ("[1, 2]", "line 2: no audio_filepath"),
        ('{"text": "x"}', "line 2: no audio_filepath"),
        ('{"audio_filepath": "a.wav", "text": 3}', "line 2: text is not a string"),
    ],
)
def test_a_bad_line_is_named_by_its_number(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio_filepath": "a.wav"}\n' + line + "\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)
