import struct
import subprocess
import time

import numpy as np
import pytest

from asr.audio import (
    SAMPLE_RATE,
    AudioEmpty,
    AudioError,
    AudioHeader,
    AudioSilent,
    AudioTooLong,
    AudioUnreadable,
    decode_audio,
    ffmpeg_executable,
    header_problem,
    probe_audio,
    read_audio,
)

TONE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2", "-ac", "2"]

FORMATS = {
    "wav": ["-c:a", "pcm_s16le"],
    "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame"],
    "ogg": ["-c:a", "libvorbis"],
    "opus": ["-c:a", "libopus"],
    "m4a": ["-c:a", "aac"],
    "webm": ["-c:a", "libopus"],
}


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def wav_bytes(samples_int16: np.ndarray) -> bytes:
    data = samples_int16.astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_each_format_decodes_to_16k_mono_float32_with_the_right_pitch(ffmpeg, extension):
    path = ffmpeg(*TONE, *FORMATS[extension], f"tone.{extension}")

    samples = decode_audio(path)

    assert samples.dtype == np.float32 and samples.ndim == 1
    # lossy codecs add a few ms of priming; resampling from 44.1 kHz must keep the length
    assert abs(len(samples) / SAMPLE_RATE - 2.0) < 0.08
    assert abs(dominant_frequency(samples) - 440) < 5
    assert 0.11 < np.max(np.abs(samples)) < 0.14  # lavfi sine peaks at 1/8


def test_real_speech_decodes_to_its_manifest_duration(real_speech):
    path, _ = real_speech[0]
    samples = decode_audio(path)
    assert abs(len(samples) / SAMPLE_RATE - probe_audio(path).duration_seconds) < 0.02


def test_non_audio_bytes_are_unreadable(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("these are minutes of the meeting, not a recording\n" * 20)
    with pytest.raises(AudioUnreadable, match="notes.mp3"):
        decode_audio(path)


def test_a_missing_file_is_unreadable(tmp_path):
    with pytest.raises(AudioUnreadable, match="no such file"):
        decode_audio(tmp_path / "gone.wav")


def test_a_video_without_sound_is_unreadable(ffmpeg):
    path = ffmpeg("-f", "lavfi", "-i", "color=size=32x32:duration=1", "-c:v", "mjpeg", "mute.avi")
    with pytest.raises(AudioUnreadable):
        decode_audio(path)


@pytest.mark.parametrize("extension", ["mp3", "m4a", "ogg", "webm", "flac"])
def test_a_file_cut_inside_its_header_is_unreadable(ffmpeg, extension):
    path = ffmpeg(*TONE, *FORMATS[extension], f"tone.{extension}")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(AudioUnreadable):
        decode_audio(path)


def test_an_m4a_upload_cut_in_half_is_unreadable(ffmpeg):
    # phones write the index (moov atom) at the end, so half a file has none
    path = ffmpeg(*TONE, "-c:a", "aac", "tone.m4a")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioUnreadable):
        decode_audio(path)


def test_an_mp3_cut_in_half_decodes_to_the_part_that_is_there(ffmpeg):
    path = ffmpeg(*TONE, "-c:a", "libmp3lame", "tone.mp3")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    samples = decode_audio(path)
    assert 0.7 < len(samples) / SAMPLE_RATE < 1.3
    assert abs(dominant_frequency(samples) - 440) < 5


def test_a_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "upload.webm"
    path.write_bytes(b"")
    with pytest.raises(AudioEmpty):
        decode_audio(path)


def test_a_wav_with_a_header_and_no_samples_is_empty(tmp_path):
    path = tmp_path / "header-only.wav"
    path.write_bytes(wav_bytes(np.zeros(0)))
    with pytest.raises(AudioEmpty):
        decode_audio(path)


@pytest.mark.parametrize("amplitude", [0, 3])  # digital zero, and -80 dBFS hiss
def test_silence_is_refused(tmp_path, amplitude):
    path = tmp_path / "silence.wav"
    noise = np.random.default_rng(0).integers(-amplitude, amplitude + 1, SAMPLE_RATE * 2)
    path.write_bytes(wav_bytes(noise))
    with pytest.raises(AudioSilent):
        decode_audio(path)


def test_quiet_speech_above_the_silence_level_is_kept(tmp_path):
    path = tmp_path / "quiet.wav"
    quiet_tone = 100 * np.sin(2 * np.pi * 300 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)  # -50 dBFS
    path.write_bytes(wav_bytes(quiet_tone))
    assert len(decode_audio(path)) == SAMPLE_RATE


def test_a_ten_hour_header_is_refused_before_decoding(ffmpeg):
    # one second of sound whose Matroska header says ten hours: refused on the header alone
    path = ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libopus", "long.webm")
    content = path.read_bytes()
    duration_element = content.index(b"\x44\x89\x88")  # EBML Duration, an 8-byte float (ms)
    start = duration_element + 3
    path.write_bytes(content[:start] + struct.pack(">d", 36_000_000.0) + content[start + 8 :])

    assert probe_audio(path).duration_seconds == pytest.approx(36000, abs=1)
    with pytest.raises(AudioTooLong, match="10:00:00"):
        decode_audio(path, max_seconds=3600)


def test_a_stream_without_stated_duration_stops_decoding_past_the_limit(tmp_path):
    # a webm written to a pipe has no duration in its header, like MediaRecorder's
    path = tmp_path / "browser.webm"
    with path.open("wb") as output:
        subprocess.run(
            [ffmpeg_executable(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=8"]
            + ["-c:a", "libopus", "-f", "webm", "pipe:1"],
            stdout=output,
            check=True,
        )
    assert probe_audio(path).duration_seconds is None

    assert abs(len(decode_audio(path)) / SAMPLE_RATE - 8) < 0.05
    started = time.monotonic()
    with pytest.raises(AudioTooLong):
        decode_audio(path, max_seconds=5)
    assert time.monotonic() - started < 5


def test_all_refusals_share_one_base_class():
    for error in (AudioUnreadable, AudioEmpty, AudioSilent, AudioTooLong):
        assert issubclass(error, AudioError)


def wav_with_header(rate: int, channels: int, frames: int) -> bytes:
    data = (np.random.default_rng(0).normal(0, 3000, frames * channels)).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


def test_the_header_states_rate_channels_and_duration(tmp_path):
    path = tmp_path / "stereo.wav"
    path.write_bytes(wav_with_header(22050, 2, 22050))

    assert probe_audio(path) == AudioHeader(
        duration_seconds=pytest.approx(1.0), sample_rate=22050, channels=2
    )


def test_a_wav_claiming_one_hertz_is_refused_in_a_moment_not_resampled_for_minutes(tmp_path):
    # 16 KB "at 1 Hz" states 2:13:20: it used to hold a worker for ten minutes at 600 MB
    path = tmp_path / "forged.wav"
    path.write_bytes(wav_with_header(1, 1, 8000))
    started = time.monotonic()

    with pytest.raises(AudioUnreadable, match=r"forged.wav: .*1 Hz.*damaged or mislabeled"):
        decode_audio(path)

    assert time.monotonic() - started < 5


def test_a_header_with_absurd_channels_is_refused(tmp_path):
    path = tmp_path / "many.wav"
    path.write_bytes(wav_with_header(16000, 200, 160))

    with pytest.raises(AudioUnreadable, match="200 channels"):
        decode_audio(path)


def test_hours_stated_in_a_few_kilobytes_are_refused_as_impossible():
    header = AudioHeader(duration_seconds=7200.0, sample_rate=16000, channels=1)

    assert "cannot be" in header_problem(header, size_bytes=16_000, max_seconds=4 * 3600)
    assert header_problem(header, size_bytes=16_000_000, max_seconds=4 * 3600) is None


def test_a_truncated_mp3_keeps_what_is_readable_and_says_how_much(ffmpeg):
    whole = ffmpeg("-f", "lavfi", "-i", "sine=duration=150", "-c:a", "libmp3lame", "whole.mp3")
    truncated = whole.with_name("truncated.mp3")
    truncated.write_bytes(whole.read_bytes()[:40_000])  # the Xing header still says 2:30

    decoded = read_audio(truncated)

    assert 3 < decoded.seconds < 8
    assert decoded.stated_seconds == pytest.approx(150, abs=1)
    assert decoded.damage_note().startswith("damaged: 0:00:0")
    assert "0:02:30" in decoded.damage_note()


def test_a_whole_file_has_no_damage_note(ffmpeg):
    path = ffmpeg(*TONE, "-c:a", "libmp3lame", "tone.mp3")

    assert read_audio(path).damage_note() is None
