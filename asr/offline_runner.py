"""Transcribe audio files with an exported Vernacular model, offline and without Vernacular.

    pip install numpy onnxruntime soundfile          (and flashlight-text for --lm)
    python transcribe.py clip.wav more.flac          greedy, with model.int8.onnx
    python transcribe.py --model model.onnx clip.wav  float32: the app's own text, half the speed
    python transcribe.py --lm clip.wav               the round's lexicon and word 3-gram LM

One line per file: its name, a tab, the text. This file is copied into every export beside
model.onnx, vocab.json and decoding.json, and imports nothing of Vernacular's: the greedy
decoding and the lexicon beam search are written out again here (the same steps as the
app's asr.decode and asr.lm), so the folder works on any machine with the three packages.
Audio longer than the model reads at once (30 s) is cut into windows at the quietest 0.1 s
near each window's end, so a cut rarely falls inside a word.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile

HERE = Path(__file__).resolve().parent
QUIET_SEARCH_SECONDS = 5.0  # a window ends at the quietest 0.1 s of its last 5 s
UNKNOWN_WORD = "<unk>"


def read_samples(path: Path, sample_rate: int) -> np.ndarray:
    """Any file soundfile reads -> mono float32 at `sample_rate` (channels averaged)."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if rate != sample_rate:  # band-limited resampling through the spectrum
        count = int(round(len(samples) * sample_rate / rate))
        spectrum = np.fft.rfft(samples)
        keep = count // 2 + 1
        spectrum = (
            spectrum[:keep]
            if len(spectrum) >= keep
            else np.pad(spectrum, (0, keep - len(spectrum)))
        )
        samples = np.fft.irfft(spectrum, count) * (count / max(len(samples), 1))
    return samples.astype(np.float32)


def windows(samples: np.ndarray, settings: dict) -> list[np.ndarray]:
    """Pieces of at most max_samples, cut at low energy; each at least min_samples long."""
    rate, longest = settings["sample_rate"], settings["max_samples"]
    step = rate // 10
    pieces, start = [], 0
    while len(samples) - start > longest:
        search_from = start + longest - int(QUIET_SEARCH_SECONDS * rate)
        energies = [
            float(np.square(samples[at : at + step]).sum())
            for at in range(search_from, start + longest - step + 1, step // 2)
        ]
        cut = search_from + (step // 2) * int(np.argmin(energies)) + step // 2
        pieces.append(samples[start:cut])
        start = cut
    pieces.append(samples[start:])
    shortest = settings["min_samples"]
    return [np.pad(piece, (0, max(shortest - len(piece), 0))) for piece in pieces]


def spell(token_ids, tokens: list[str], blank_id: int, delimiter: str) -> str:
    pieces = [" " if tokens[t] == delimiter else tokens[t] for t in token_ids if t != blank_id]
    return re.sub(r"\s+", " ", "".join(pieces)).strip()


def greedy_text(log_probs: np.ndarray, tokens: list[str], settings: dict) -> str:
    """Best token per frame, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=-1)
    collapsed = [int(t) for i, t in enumerate(best) if i == 0 or t != best[i - 1]]
    return spell(collapsed, tokens, settings["blank_id"], settings["word_delimiter"])


class LexiconBeamSearch:
    """flashlight-text's lexicon decoder over lm.arpa and lexicon.txt, set as the app sets it."""

    def __init__(self, folder: Path, tokens: list[str], settings: dict):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            SmearingMode,
            Trie,
        )
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary, create_word_dict

        self.tokens, self.settings = tokens, settings
        delimiter, beam = settings["word_delimiter"], settings["lm_beam"]
        spellable = set(tokens[3:])
        words = (folder / "lexicon.txt").read_text("utf-8").split()
        lexicon = {
            word: [[*word, delimiter]]
            for word in sorted(set(words))
            if set(word) <= spellable and word not in ("<s>", "</s>")
        }
        lexicon[UNKNOWN_WORD] = [[UNKNOWN_WORD]]
        word_dictionary = create_word_dict(lexicon)
        token_dictionary = Dictionary(tokens)
        self.lm = KenLM(str(folder / "lm.arpa"), word_dictionary)
        self.delimiter_id = tokens.index(delimiter)
        trie = Trie(len(tokens), self.delimiter_id)
        start = self.lm.start(False)
        for word, spellings in lexicon.items():
            if word == UNKNOWN_WORD:
                continue
            word_id = word_dictionary.get_index(word)
            _, score = self.lm.score(start, word_id)
            for spelling in spellings:
                trie.insert([token_dictionary.get_index(t) for t in spelling], word_id, score)
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(
            beam_size=beam["beam_size"],
            beam_size_token=beam["beam_size_token"],
            beam_threshold=beam["beam_threshold"],
            lm_weight=beam["lm_weight"],
            word_score=beam["word_score"],
            unk_score=beam["unknown_score"],
            sil_score=0.0,
            log_add=False,
            criterion_type=CriterionType.CTC,
        )
        self.decoder = LexiconDecoder(
            options,
            trie,
            self.lm,
            self.delimiter_id,
            settings["blank_id"],
            word_dictionary.get_index(UNKNOWN_WORD),
            [],
            False,
        )

    def text(self, log_probs: np.ndarray) -> str:
        if len(log_probs) == 0:
            return ""
        # one closing frame that is surely a word delimiter lets the last word end as a
        # lexicon word (a CTC model never writes a delimiter after a clip's last word)
        closing = np.full((1, log_probs.shape[1]), -1e4, np.float32)
        closing[0, self.delimiter_id] = 0.0
        emissions = np.ascontiguousarray(np.concatenate([log_probs, closing]), np.float32)
        frames, size = emissions.shape
        best = self.decoder.decode(emissions.ctypes.data, frames, size)[0]
        path = [t for t in best.tokens if t >= 0]
        collapsed = [t for i, t in enumerate(path) if i == 0 or t != path[i - 1]]
        return spell(
            collapsed, self.tokens, self.settings["blank_id"], self.settings["word_delimiter"]
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "audio", nargs="+", help="audio files (WAV, FLAC, OGG: what soundfile reads)"
    )
    parser.add_argument(
        "--model", default=str(HERE / "model.onnx"), help="default: model.onnx here"
    )
    parser.add_argument(
        "--lm", action="store_true", help="beam search with lm.arpa and lexicon.txt"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args(argv)

    tokens_by_id = json.loads((HERE / "vocab.json").read_text("utf-8"))
    tokens = sorted(tokens_by_id, key=tokens_by_id.__getitem__)
    settings = json.loads((HERE / "decoding.json").read_text("utf-8"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    model = Path(args.model)
    if not model.is_file() and (HERE / model).is_file():  # "--model model.onnx" from elsewhere
        model = HERE / model
    if not model.is_file():
        print(f"{args.model}: no such model file", file=sys.stderr)
        return 2
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    if args.lm and not (HERE / "lm.arpa").is_file():
        print("this export has no lm.arpa: the round kept no language model", file=sys.stderr)
        return 2
    beam = LexiconBeamSearch(HERE, tokens, settings) if args.lm else None
    status = 0
    for name in args.audio:  # a file that cannot be read is named, and the rest still run
        if not Path(name).is_file():
            print(f"{name}: no such file", file=sys.stderr)
            status = 2
            continue
        try:
            samples = read_samples(Path(name), settings["sample_rate"])
        except (OSError, RuntimeError) as error:  # soundfile.LibsndfileError is a RuntimeError
            print(f"{name}: cannot read it as audio ({error})", file=sys.stderr)
            status = 2
            continue
        texts = []
        for piece in windows(samples, settings):
            log_probs = session.run(["log_probs"], {"audio": piece[None, :]})[0][0]
            texts.append(beam.text(log_probs) if beam else greedy_text(log_probs, tokens, settings))
        print(f"{Path(name).name}\t{' '.join(text for text in texts if text)}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
