"""A trained CTC model as files that run without Vernacular: ONNX (float32 and int8), its
vocabulary, its language model, a standalone runner and a model card.

    export_offline(model, "out/")              # model.onnx, model.int8.onnx, vocab.json, ...
    python out/transcribe.py clip.wav          # numpy + onnxruntime + soundfile, nothing of ours

The ONNX graph takes one clip's 16 kHz mono samples, `audio` (1, n) float32, any length up to
30 s (the Whisper encoder's positions; the runner cuts longer audio into windows), and gives
`log_probs` (1, T, V), the log-softmax of the CTC logits at 50 frames/s. Everything the app
does between the samples and those log-probabilities is in the graph: the log-mel
spectrogram for a Whisper-encoder model, the zero-mean unit-variance normalization for a
wav2vec 2.0 one, the encoder and the head.
"""

import json
import logging
import shutil
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from asr.lm import LEXICON_FILE, LM_FILE, BeamSettings
from asr.model import CtcModel

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
VOCABULARY_FILE = "vocab.json"
RUNNER_FILE = "transcribe.py"
DECODING_FILE = "decoding.json"
RUNNER_SOURCE = Path(__file__).with_name("offline_runner.py")
OPSET = 18
MIN_SAMPLES = 1600  # 0.1 s: transcribe_clips pads shorter clips with silence, so does the runner
MAX_SAMPLES = 30 * 16_000

OFFLINE_USAGE = """## Run it offline

This folder runs without Vernacular, torch or transformers: Python and three packages do.

```sh
pip install numpy onnxruntime soundfile            # and flashlight-text for --lm
python transcribe.py recording.wav                 # model.int8.onnx, greedy CTC decoding
python transcribe.py --model model.onnx recording.wav   # float32: 3x the size, half the speed
python transcribe.py --lm recording.wav            # with lexicon.txt and lm.arpa, if here
```

It prints one line per file: the file's name, a tab, the text. Audio in any format soundfile
reads (WAV, FLAC, OGG), any sample rate, mono or stereo.

- `model.onnx` / `model.int8.onnx`: the whole network, from samples to CTC log-probabilities.
  Input `audio`: float32 (1, n), 16 kHz mono, 0.1 to 30 s; output `log_probs`: (1, T, V)
  at 50 frames per second. `model.onnx` (float32) writes exactly the text Vernacular writes;
  `model.int8.onnx` has its matrix weights quantized (dynamic int8): a third of the size,
  about twice the speed, and on the demo language the same error rate to within a point.
- `vocab.json`: token to id; id 0 (`[PAD]`) is the CTC blank, `|` separates words.
- `decoding.json`: the sample rate, the window limits and the beam search settings.
- `lm.arpa`, `lexicon.txt` (when the round kept its language model): a word 3-gram model in
  the ARPA text format that KenLM reads, and the words the beam search may write, one a
  line. `transcribe.py --lm` runs flashlight-text's lexicon decoder (KenLM inside) with
  them, set as Vernacular sets it (`decoding.json`'s `lm_beam`).
- `transcribe.py`: the runner, a single file; read it to use the model from your own code.
"""


class WhisperCtcForExport(nn.Module):
    """WhisperCtcNetwork's forward for one unpadded clip, with shapes only where the app's code
    reads lengths from tensors (which torch.export cannot trace): the same weights and the same
    arithmetic, so the greedy text equals the app's."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        from asr.whisper import HOP_LENGTH, N_FFT

        network = self.network
        log_mel_module = network.log_mel
        mel_frames = audio.shape[1] // HOP_LENGTH
        padded = F.pad(audio, (0, N_FFT // 2))
        spectrum = torch.stft(
            padded, N_FFT, HOP_LENGTH, window=log_mel_module.window, return_complex=True
        )
        power = spectrum[..., :mel_frames].abs() ** 2  # (1, 201, M)
        log_mel = torch.clamp(log_mel_module.filters @ power, min=1e-10).log10()
        loudest = log_mel.amax(dim=(1, 2), keepdim=True)
        log_mel = (torch.maximum(log_mel, loudest - 8.0) + 4.0) / 4.0  # (1, 80, M)

        encoder = network.encoder
        x = F.gelu(encoder.conv1(log_mel))
        x = F.gelu(encoder.conv2(x)).transpose(1, 2)  # (1, T, 512)
        x = x + encoder.positions[: x.shape[1]]
        outputs = encoder.layer_outputs(x, None, network.head_config.encoder_layers)
        hidden = (
            outputs[0] if len(outputs) == 1 else network.mix_layers(torch.stack(outputs, dim=2))
        )
        logits = network.lm_head(network.head(network.head_in(hidden)))
        return torch.log_softmax(logits, dim=-1)


class Wav2Vec2ForExport(nn.Module):
    """A transformers CTC network behind its feature extractor's normalization, for one clip."""

    def __init__(self, network, normalize: bool):
        super().__init__()
        self.network = network
        self.normalize = normalize

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if self.normalize:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
            audio = (audio - audio.mean()) / torch.sqrt(audio.var(correction=0) + 1e-7)
        return torch.log_softmax(self.network(audio).logits, dim=-1)


def export_module(model: CtcModel) -> nn.Module:
    network = model.network.eval()
    if type(network).__name__ == "WhisperCtcNetwork":
        return WhisperCtcForExport(network).eval()
    return Wav2Vec2ForExport(network, bool(model.feature_extractor.do_normalize)).eval()


def export_onnx(model: CtcModel, path: str | Path) -> None:
    """Write the whole network, samples in and log-probabilities out, as one ONNX file."""
    module = export_module(model)
    example = torch.zeros(1, 16_000)
    samples = torch.export.Dim("samples", min=MIN_SAMPLES, max=MAX_SAMPLES)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=["audio"],
            output_names=["log_probs"],
            dynamic_shapes=({1: samples},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))


def quantize_int8(source: str | Path, target: str | Path) -> None:
    """Dynamic int8 quantization of the matrix multiplications (weights int8, activations
    quantized on the fly): a quarter of the weights' size, run by any onnxruntime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # a line per tensor it leaves alone, and advice to us
    try:
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
    finally:
        logging.disable(logging.NOTSET)


def export_offline(
    model: CtcModel,
    target: str | Path,
    model_directory: str | Path | None = None,
    card_header: str = "",
) -> list[Path]:
    """Write the offline folder: both ONNX files, vocab.json, the runner, the decoding settings,
    the lm.arpa and lexicon.txt that `model_directory` has, and README.md (`card_header`, what
    the caller knows of the model, then how to run it). Returns the paths."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    export_onnx(model, target / ONNX_FILE)
    quantize_int8(target / ONNX_FILE, target / ONNX_INT8_FILE)
    model.vocabulary.save(target / VOCABULARY_FILE)
    shutil.copyfile(RUNNER_SOURCE, target / RUNNER_FILE)
    settings = BeamSettings()
    decoding = {
        "sample_rate": 16_000,
        "frames_per_second": 50,
        "max_samples": MAX_SAMPLES,
        "min_samples": MIN_SAMPLES,
        "blank_id": model.vocabulary.pad_id,
        "word_delimiter": "|",
        "lm_beam": {name: getattr(settings, name) for name in settings.__dataclass_fields__},
    }
    (target / DECODING_FILE).write_text(json.dumps(decoding, indent=1) + "\n")
    if model_directory is not None:
        for name in (LM_FILE, LEXICON_FILE):
            if (Path(model_directory) / name).is_file():
                shutil.copyfile(Path(model_directory) / name, target / name)
    header = card_header or (
        "# Speech recognizer (CTC)\n\n"
        f"It writes these characters: `{''.join(model.vocabulary.tokens[3:])}` and the space.\n"
    )
    (target / "README.md").write_text(header.rstrip("\n") + "\n\n" + OFFLINE_USAGE, "utf-8")
    return sorted(path for path in target.iterdir() if path.is_file())
