"""Audio fingerprints that survive re-encoding and resampling: does this recording repeat, or
contain, one we have?

Haitsma and Kalker's scheme ("A highly robust audio fingerprinting system", ISMIR 2002), set
for speech: the 16 kHz mono signal in Hann frames of 2048 samples every 512 (32 ms), the
power in 33 bands spaced evenly on a log scale from 300 Hz to 4 kHz, and per frame 32 bits,
bit b set when the energy difference of bands b and b+1 grew since the frame before. An MP3
or a resampled copy flips a few bits per frame; different speech flips half of them.

    codes, audible = fingerprint(samples)          # (F,) uint32, (F,) bool
    overlap = find_overlap(new, old)               # Overlap or None

Matching votes for time offsets on frames whose 32 bits agree exactly (an inverted index of
one side's codes), then checks each candidate offset frame by frame: a stretch where the bit
error rate over 2 s stays under 0.3 is the same audio. Quiet frames (digital silence gives
the same code everywhere) neither vote nor count.
"""

import struct
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE

FRAME = 2048
HOP = 512
FRAMES_PER_SECOND = SAMPLE_RATE / HOP  # 31.25
BANDS = 33  # 32 differences: one uint32 per frame
LOW_HZ, HIGH_HZ = 300.0, 4000.0
QUIET_DB = -55.0  # frames this far below full scale are silence
WINDOW = 64  # frames (2 s) over which the bit error rate is judged
MAX_BIT_ERROR_RATE = 0.3  # Haitsma and Kalker's threshold is 0.35 for 3 s blocks
CANDIDATE_OFFSETS = 5


@dataclass(frozen=True)
class Overlap:
    """Where `new` and `old` hold the same audio: frames [new_start, new_end) of new are
    frames [old_start, old_end) of old."""

    new_start: int
    new_end: int
    old_start: int
    old_end: int
    bit_error_rate: float

    @property
    def seconds(self) -> float:
        return (self.new_end - self.new_start) / FRAMES_PER_SECOND


def fingerprint(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) float32 at 16 kHz -> codes (F,) uint32 and audible (F,) bool, F = frames."""
    samples = np.asarray(samples, np.float32)
    if len(samples) < FRAME + HOP:
        return np.zeros(0, np.uint32), np.zeros(0, bool)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME)[::HOP]  # (F+1, FRAME)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME).astype(np.float32), axis=1)) ** 2
    frequencies = np.fft.rfftfreq(FRAME, 1 / SAMPLE_RATE)
    edges = np.geomspace(LOW_HZ, HIGH_HZ, BANDS + 1)
    band = np.digitize(frequencies, edges) - 1  # -1 and BANDS: outside 300 Hz-4 kHz
    members = (band[:, None] == np.arange(BANDS)[None, :]).astype(np.float32)  # (1025, 33)
    energies = spectrum.astype(np.float32) @ members  # (F+1, 33): each band's power
    differences = np.diff(energies, axis=1)  # (F+1, 32)
    bits = (differences[1:] - differences[:-1]) > 0  # (F, 32)
    codes = (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1)
    loudness = 10 * np.log10(np.mean(frames[1:] ** 2, axis=1) + 1e-12)
    return codes.astype(np.uint32), loudness > QUIET_DB


def find_overlap(
    new: tuple[np.ndarray, np.ndarray],
    old: tuple[np.ndarray, np.ndarray],
    min_seconds: float = 1.5,
) -> Overlap | None:
    """The longest stretch of the same audio in both fingerprints, at least `min_seconds`
    long, or None."""
    new_codes, new_audible = new
    old_codes, old_audible = old
    if not new_audible.any() or not old_audible.any():
        return None
    positions: dict[int, list[int]] = {}
    for index in np.flatnonzero(old_audible):
        positions.setdefault(int(old_codes[index]), []).append(int(index))
    votes: dict[int, int] = {}
    for index in np.flatnonzero(new_audible):
        for position in positions.get(int(new_codes[index]), ()):
            offset = position - int(index)
            votes[offset] = votes.get(offset, 0) + 1
    best = None
    for offset, _ in sorted(votes.items(), key=lambda item: -item[1])[:CANDIDATE_OFFSETS]:
        found = _aligned_stretch(new, old, offset)
        if found and (best is None or found.seconds > best.seconds):
            best = found
    return best if best and best.seconds >= min_seconds else None


def _aligned_stretch(new, old, offset: int) -> Overlap | None:
    """The longest run of frames where new[i] matches old[i + offset] over a 2 s window."""
    new_codes, new_audible = new
    old_codes, old_audible = old
    start = max(0, -offset)
    offset = int(offset)
    end = min(len(new_codes), len(old_codes) - offset)
    if end - start < WINDOW // 2:
        return None
    a, b = new_codes[start:end], old_codes[start + offset : end + offset]
    counted = new_audible[start:end] & old_audible[start + offset : end + offset]
    errors = np.unpackbits((a ^ b).view(np.uint8).reshape(-1, 4), axis=1).sum(axis=1) / 32
    window = np.ones(min(WINDOW, len(errors)))
    error_sum = np.convolve(errors * counted, window, mode="same")
    counted_sum = np.convolve(counted.astype(float), window, mode="same")
    rate = np.divide(error_sum, counted_sum, out=np.ones_like(error_sum), where=counted_sum > 8)
    matched = np.concatenate([[False], rate < MAX_BIT_ERROR_RATE, [False]])
    changes = np.flatnonzero(np.diff(matched.astype(np.int8)))
    runs = list(zip(changes[::2], changes[1::2], strict=True))
    if not runs:
        return None
    first, last = max(runs, key=lambda run: run[1] - run[0])
    inside = counted[first:last]
    ber = float((errors[first:last] * inside).sum() / max(inside.sum(), 1))
    first, last = int(first), int(last)
    return Overlap(start + first, start + last, start + first + offset, start + last + offset, ber)


def frame_seconds(frame: int) -> float:
    return frame / FRAMES_PER_SECOND


def to_bytes(print_: tuple[np.ndarray, np.ndarray]) -> bytes:
    """A fingerprint as bytes to store: the codes, then the audible flags packed 8 a byte."""
    codes, audible = print_
    return (
        struct.pack("<I", len(codes))
        + codes.astype("<u4").tobytes()
        + np.packbits(audible).tobytes()
    )


def from_bytes(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    (count,) = struct.unpack_from("<I", data)
    codes = np.frombuffer(data, "<u4", count, offset=4).astype(np.uint32)
    packed = np.frombuffer(data, np.uint8, offset=4 + 4 * count)
    return codes, np.unpackbits(packed)[:count].astype(bool)


class FingerprintIndex:
    """Many fingerprints searched at once: which of them share the most exact frame codes with
    a query (the candidates worth checking with find_overlap), instead of checking them all."""

    def __init__(self) -> None:
        self._prints: dict = {}
        self._postings: dict[int, set] | None = None  # built on the first search that needs it

    def add(self, key, print_: tuple[np.ndarray, np.ndarray]) -> None:
        self._prints[key] = print_
        if self._postings is not None:
            self._post(key, print_)

    def _post(self, key, print_) -> None:
        codes, audible = print_
        for code in set(codes[audible].tolist()):
            self._postings.setdefault(code, set()).add(key)

    def __getitem__(self, key) -> tuple[np.ndarray, np.ndarray]:
        return self._prints[key]

    def candidates(self, print_, limit: int = 10, check_all_below: int = 200) -> list:
        """The keys worth checking with find_overlap: all of them while there are fewer than
        `check_all_below` (a copy shifted half a frame shares few exact codes: 1 in 8 s in the
        worst case measured), else the `limit` that share the most codes with the query."""
        if len(self._prints) < check_all_below:
            return list(self._prints)
        if self._postings is None:
            self._postings = {}
            for key, indexed in self._prints.items():
                self._post(key, indexed)
        codes, audible = print_
        shared: dict = {}
        for code in set(codes[audible].tolist()):
            for key in self._postings.get(code, ()):
                shared[key] = shared.get(key, 0) + 1
        return sorted(shared, key=shared.get, reverse=True)[:limit]

    def __len__(self) -> int:
        return len(self._prints)
