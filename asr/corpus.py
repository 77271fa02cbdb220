"""A synthetic low-resource-language corpus, made offline with espeak-ng, deterministic from a seed.

The language is Swahili-like: espeak-ng's Swahili voice reads a fixed lexicon whose most frequent
words are real, common Swahili words (hand-written list below) and whose long tail is
pseudo-words built from Swahili syllables (CV, prenasalized and digraph onsets, always ending in
a vowel). Swahili spelling is close to phonemic, so the voice pronounces the pseudo-words as
regularly as the real ones, and the orthography the recognizer learns is a real one. Word
frequencies are Zipf-Mandelbrot; sentences have 3-12 words.

Each clip is read by one of eleven voice variants (m1-m7, f1-f4) at its own speed and pitch; about
a third also get one degradation (background noise, a faster speed, or reverberation) so clips
differ in difficulty. Everything about clip i comes from `numpy.random.default_rng((seed, i))`:
the same seed gives byte-identical files and manifests, a longer corpus starts with the shorter
one, and an interrupted run resumes where it stopped.

Output directory:

    clips/clip_000012_<key>.wav   16 kHz mono PCM; <key> hashes everything that made the audio
    manifest.jsonl                NeMo-style: audio_filepath (relative), duration, text, and how
                                  the clip was made (voice, speed, pitch, augmentation)
    recordings/recording_000.wav  clips joined with pauses: the demo project's unlabeled uploads
    recordings_truth.jsonl        where each clip lies in its recording, with its text (kept
                                  apart from recordings/, which is what an app user would upload)
    lexicon.tsv                   rank, word, probability
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, read_wav16, wav_bytes

# The head of the lexicon: frequent Swahili words (function words, pronouns, common verbs and
# nouns). Ranks follow rough newspaper frequency; what matters here is that they are real words
# spoken often.
_COMMON_SWAHILI_TEXT = """
na ya wa kwa ni la za katika kuwa hiyo hii huo ambao ambayo pia lakini kama sana hata bado
mimi wewe yeye sisi ninyi wao huyu hao yule wale kila kitu watu mtu siku leo jana kesho sasa
tena moja mbili tatu nne tano kubwa ndogo nzuri mbaya mpya zaidi kabla baada wakati mahali
nyumba shule kazi maji chakula mji nchi serikali rais watoto mama baba rafiki mwalimu daktari
soko barabara gari njia habari jambo asante karibu ndiyo hapana sawa kusema kufanya kwenda kuja
kuona kupata kujua kutaka kula kunywa kusoma kuandika kulala kukaa kununua kuuza kupika kucheza
anasema alisema wanasema walikuwa tulikuwa nilikuwa atakuja tutaenda nataka unataka anaweza
mvua jua usiku asubuhi mchana jioni wiki mwezi mwaka saa dakika mlima mto bahari ziwa kisiwa
"""
COMMON_SWAHILI_WORDS = tuple(_COMMON_SWAHILI_TEXT.split())

VOICE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")

_ONSETS = (
    ("", 4), ("k", 10), ("t", 9), ("m", 9), ("n", 8), ("w", 8), ("l", 7), ("s", 6), ("h", 5),
    ("b", 5), ("y", 5), ("z", 4), ("p", 4), ("ch", 4), ("j", 4), ("d", 4), ("f", 3), ("g", 3),
    ("r", 3), ("v", 2), ("sh", 3), ("ny", 3), ("mb", 3), ("nd", 3), ("ng", 2), ("nj", 2),
    ("kw", 3), ("mw", 3), ("th", 1), ("dh", 1), ("gh", 1),
)  # fmt: skip
_VOWELS = (("a", 30), ("i", 22), ("u", 16), ("e", 12), ("o", 12))


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0
    clip_count: int = 200
    lexicon_seed: int = 0  # the language itself: keep it when drawing a second corpus
    lexicon_size: int = 3000
    zipf_exponent: float = 1.05
    zipf_offset: float = 2.7  # Zipf-Mandelbrot: p(rank r) ~ 1 / (r + offset)^exponent
    min_words: int = 3
    max_words: int = 12
    voice: str = "sw"
    voice_variants: tuple[str, ...] = VOICE_VARIANTS
    words_per_minute: tuple[int, int] = (130, 200)
    pitch: tuple[int, int] = (25, 75)  # espeak-ng's 0-99
    augmented_share: float = 1 / 3
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    speedup: tuple[float, float] = (1.15, 1.4)
    reverb_seconds: tuple[float, float] = (0.3, 0.9)  # RT60 of a synthetic room
    clips_per_recording: int = 40  # 0: no recordings
    pause_seconds: tuple[float, float] = (0.5, 2.0)


@dataclass(frozen=True)
class ClipPlan:
    """Everything that decides one clip's audio."""

    index: int
    text: str
    voice: str
    words_per_minute: int
    pitch: int
    augmentation: str  # "" | "noise" | "fast" | "reverb"
    augmentation_amount: float  # SNR in dB, speed factor, or RT60 in seconds
    peak: float  # final peak amplitude

    def key(self) -> str:
        """A short hash of the plan and the espeak-ng version: a file with it in its name
        holds exactly this clip."""
        payload = json.dumps([asdict(self), espeak_version()], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]

    @property
    def file_name(self) -> str:
        return f"clip_{self.index:06d}_{self.key()}.wav"


class EspeakNotAvailable(Exception):
    """espeak-ng is not installed (Debian: apt-get install espeak-ng)."""


def espeak_executable() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotAvailable("espeak-ng not found on PATH: apt-get install espeak-ng")
    return path


@functools.cache  # the binary does not change under a running process
def espeak_version() -> str:
    output = subprocess.run(
        [espeak_executable(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(output.split()[:4])


# --- the language -------------------------------------------------------------------------------


def build_lexicon(config: CorpusConfig) -> tuple[list[str], np.ndarray]:
    """Words by rank and their probabilities (lexicon_size,). The common Swahili words come first,
    then distinct pseudo-words of 1-4 syllables (2-3 most often, as in Swahili)."""
    rng = np.random.default_rng(config.lexicon_seed)
    words = list(dict.fromkeys(COMMON_SWAHILI_WORDS))[: config.lexicon_size]
    seen = set(words)
    onsets, onset_weights = _choices(_ONSETS)
    vowels, vowel_weights = _choices(_VOWELS)
    while len(words) < config.lexicon_size:
        syllables = rng.choice([1, 2, 3, 4], p=[0.05, 0.4, 0.4, 0.15])
        word = "".join(
            str(rng.choice(onsets, p=onset_weights)) + str(rng.choice(vowels, p=vowel_weights))
            for _ in range(syllables)
        )
        if len(word) >= 2 and word not in seen:
            seen.add(word)
            words.append(word)
    ranks = np.arange(1, len(words) + 1)
    weights = 1.0 / (ranks + config.zipf_offset) ** config.zipf_exponent
    return words, weights / weights.sum()


def _choices(weighted: tuple[tuple[str, int], ...]) -> tuple[list[str], np.ndarray]:
    weights = np.array([weight for _, weight in weighted], float)
    return [item for item, _ in weighted], weights / weights.sum()


def plan_clip(config: CorpusConfig, index: int, words: list[str], p: np.ndarray) -> ClipPlan:
    """Clip `index`'s text, voice and degradation, from its own random stream."""
    rng = np.random.default_rng((config.seed, index))
    word_count = int(rng.integers(config.min_words, config.max_words + 1))
    text = " ".join(words[i] for i in rng.choice(len(words), size=word_count, p=p))
    augmentation, amount = "", 0.0
    if rng.random() < config.augmented_share:
        augmentation = str(rng.choice(["noise", "fast", "reverb"]))
        low, high = {
            "noise": config.noise_snr_db,
            "fast": config.speedup,
            "reverb": config.reverb_seconds,
        }[augmentation]
        amount = round(float(rng.uniform(low, high)), 3)
    return ClipPlan(
        index=index,
        text=text,
        voice=f"{config.voice}+{rng.choice(config.voice_variants)}",
        words_per_minute=int(rng.integers(*config.words_per_minute, endpoint=True)),
        pitch=int(rng.integers(*config.pitch, endpoint=True)),
        augmentation=augmentation,
        augmentation_amount=amount,
        peak=round(float(rng.uniform(0.3, 0.9)), 3),
    )


# --- audio --------------------------------------------------------------------------------------


def speak(text: str, voice: str, words_per_minute: int, pitch: int) -> np.ndarray:
    """espeak-ng's reading of `text` -> samples (n,) float32 at 16 kHz."""
    result = subprocess.run(
        [espeak_executable(), "-v", voice, "-s", str(words_per_minute), "-p", str(pitch),
         "--stdout", text],
        capture_output=True,
        check=True,
    )  # fmt: skip
    wav = result.stdout
    rate = int.from_bytes(wav[24:28], "little")
    data = wav.index(b"data") + 8  # --stdout streams: the header's sizes are placeholders
    pcm = np.frombuffer(wav[data : len(wav) - (len(wav) - data) % 2], np.int16)
    return resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling by cutting or padding the spectrum: exact for a whole clip."""
    if rate == new_rate or len(samples) == 0:
        return samples.astype(np.float32)
    length = max(1, round(len(samples) * new_rate / rate))
    spectrum = np.fft.rfft(samples)
    bins = length // 2 + 1
    spectrum = (
        spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    )
    return (np.fft.irfft(spectrum, length) * (length / len(samples))).astype(np.float32)


def degrade(samples: np.ndarray, plan: ClipPlan, rng: np.random.Generator) -> np.ndarray:
    """Apply the plan's augmentation: noise at an SNR, a speed-up (pitch rises with it, like
    Kaldi's speed perturbation), or reverberation from a decaying-noise impulse response."""
    if plan.augmentation == "noise":
        noise = _pinkish_noise(len(samples), rng)
        speech_power = np.mean(samples**2) + 1e-12
        noise_power = speech_power / 10 ** (plan.augmentation_amount / 10)
        return samples + noise * np.sqrt(noise_power / (np.mean(noise**2) + 1e-12))
    if plan.augmentation == "fast":
        return resample(samples, round(SAMPLE_RATE * plan.augmentation_amount), SAMPLE_RATE)
    if plan.augmentation == "reverb":
        rt60 = plan.augmentation_amount
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        response[0] = 1.0 / 0.3  # the direct sound stays the loudest path
        wet = np.fft.irfft(
            np.fft.rfft(samples, len(samples) + len(t))
            * np.fft.rfft(response, len(samples) + len(t))
        )
        return wet[: len(samples) + len(t) // 2]
    return samples


def _pinkish_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(length)
    spectrum = np.fft.rfft(white)
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))  # 1/f power, like room noise
    return np.fft.irfft(spectrum, length)


def render_clip(plan: ClipPlan, seed: int) -> np.ndarray:
    """The plan's audio: samples (n,) float32, peak at plan.peak."""
    samples = speak(plan.text, plan.voice, plan.words_per_minute, plan.pitch)
    rng = np.random.default_rng((seed, plan.index, 1))  # apart from the planning stream
    samples = degrade(samples.astype(np.float64), plan, rng)
    return (samples * plan.peak / (np.abs(samples).max() + 1e-9)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """asr.audio's 16-bit WAV, written to a temporary name and renamed: a file that exists is
    complete (a generation stopped midway resumes from the files it finds)."""
    temporary = path.with_suffix(".partial")
    temporary.write_bytes(wav_bytes(samples))
    os.replace(temporary, path)


def read_wav(path: Path) -> np.ndarray:
    samples = read_wav16(path)
    if samples is None:
        raise ValueError(f"{path}: not a 16 kHz mono 16-bit WAV")
    return samples


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusSummary:
    clip_count: int
    rendered: int  # the rest already existed
    seconds: float  # of clip audio
    recording_count: int
    manifest: Path
    recordings_truth: Path | None


def generate_corpus(
    config: CorpusConfig,
    directory: str | Path,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> CorpusSummary:
    """Write the corpus under `directory` (see the module docstring). Clips whose file (named by
    the hash of their plan) already exists are read, not rendered again. `progress(done, total)`
    is called after each clip, in order. `workers` threads render; the output does not depend
    on how many."""
    directory = Path(directory)
    (directory / "clips").mkdir(parents=True, exist_ok=True)
    words, p = build_lexicon(config)
    (directory / "lexicon.tsv").write_text(
        "".join(
            f"{rank}\t{word}\t{q:.6g}\n"
            for rank, (word, q) in enumerate(zip(words, p, strict=True), 1)
        )
    )
    plans = [plan_clip(config, index, words, p) for index in range(config.clip_count)]
    rows, rendered, seconds = [], 0, 0.0
    recordings = _RecordingWriter(config, directory)
    # espeak-ng runs in a subprocess and numpy's FFTs release the GIL, so threads can overlap
    # (no gain measured on a busy 2-core machine; the output is the same either way)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        clips = pool.map(lambda plan: _load_or_render(plan, config.seed, directory), plans)
        for plan, (samples, fresh) in zip(plans, clips, strict=True):
            rendered += fresh
            duration = len(samples) / SAMPLE_RATE
            seconds += duration
            rows.append(
                {
                    "audio_filepath": f"clips/{plan.file_name}",
                    "duration": round(duration, 7),
                    "text": plan.text,
                    "voice": plan.voice,
                    "words_per_minute": plan.words_per_minute,
                    "pitch": plan.pitch,
                    "augmentation": plan.augmentation,
                    "augmentation_amount": plan.augmentation_amount,
                }
            )
            recordings.add(plan.index, samples, rows[-1])
            if progress:
                progress(plan.index + 1, config.clip_count)
    recordings.finish()
    manifest = directory / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return CorpusSummary(
        clip_count=len(rows),
        rendered=rendered,
        seconds=seconds,
        recording_count=recordings.count,
        manifest=manifest,
        recordings_truth=recordings.truth_path if recordings.count else None,
    )


def _load_or_render(plan: ClipPlan, seed: int, directory: Path) -> tuple[np.ndarray, bool]:
    """The clip's samples as its file holds them, and whether they were rendered just now."""
    path = directory / "clips" / plan.file_name
    if path.is_file():
        return read_wav(path), False
    write_wav(path, render_clip(plan, seed))
    return read_wav(path), True  # what the file holds, so a resumed run matches exactly


class _RecordingWriter:
    """Joins consecutive clips into recordings with pauses of faint noise between them."""

    def __init__(self, config: CorpusConfig, directory: Path):
        self.config = config
        self.directory = directory / "recordings"
        self.truth_path = directory / "recordings_truth.jsonl"
        self.pieces: list[np.ndarray] = []
        self.truth: list[dict] = []
        self.offset = 0
        self.count = 0
        self.rng: np.random.Generator | None = None

    def add(self, index: int, samples: np.ndarray, row: dict) -> None:
        per_recording = self.config.clips_per_recording
        if per_recording <= 0:
            return
        if index % per_recording == 0:
            self._close()
            self.rng = np.random.default_rng((self.config.seed, index, 2))
            self.pieces, self.offset = [self._pause()], 0
            self.offset = len(self.pieces[0])
        name = f"recording_{index // per_recording:03d}.wav"
        self.truth.append(
            {
                "recording": f"recordings/{name}",
                "offset": round(self.offset / SAMPLE_RATE, 7),
                "duration": row["duration"],
                "text": row["text"],
                "clip": row["audio_filepath"],
            }
        )
        self.pieces += [samples, self._pause()]
        self.offset += len(samples) + len(self.pieces[-1])

    def _pause(self) -> np.ndarray:
        assert self.rng is not None
        length = int(self.rng.uniform(*self.config.pause_seconds) * SAMPLE_RATE)
        return (self.rng.standard_normal(length) * 10 ** (-60 / 20)).astype(np.float32)

    def _close(self) -> None:
        if self.pieces:
            self.directory.mkdir(exist_ok=True)
            write_wav(
                self.directory / f"recording_{self.count:03d}.wav", np.concatenate(self.pieces)
            )
            self.count += 1
            self.pieces = []

    def finish(self) -> None:
        self._close()
        if self.count:
            self.truth_path.write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.truth)
            )
