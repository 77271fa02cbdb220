"""CTC models: build a tiny one, start from any waveform encoder, save and load, transcribe.

Any transformers checkpoint that `AutoModelForCTC` knows and that reads raw waveforms works:
wav2vec 2.0, XLS-R, MMS, HuBERT, WavLM, data2vec-audio, UniSpeech, SEW. A saved model is a
standard transformers directory (config, safetensors weights, vocab.json, tokenizer and
feature-extractor configs), so `AutoModelForCTC.from_pretrained(dir)` and
`AutoProcessor.from_pretrained(dir)` work on it outside Vernacular.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForCTC,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from asr.audio import SAMPLE_RATE, ClipSpan, SegmentConfig, segment_speech
from asr.decode import ctc_greedy_decode
from asr.select import least_confidence, mean_frame_entropy, top2_margin_uncertainty
from asr.text import PAD, UNK, WORD_DELIMITER, Vocabulary


class ModelNotAvailable(Exception):
    """The checkpoint is neither a local directory nor downloadable now."""


@dataclass
class CtcModel:
    """A CTC model with what it needs to read audio and write text."""

    network: PreTrainedModel  # e.g. Wav2Vec2ForCTC; logits (B, T, len(vocabulary))
    vocabulary: Vocabulary
    feature_extractor: Wav2Vec2FeatureExtractor


@dataclass(frozen=True)
class TinyModelConfig:
    """A wav2vec 2.0 small enough for unit tests, with the real 20 ms frame stride."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    conv_channels: int = 16
    seed: int = 0


def pick_device(name: str = "auto") -> str:
    """ "auto": a CUDA GPU where there is one, else the CPU; any other name as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def build_tiny_ctc_model(
    vocabulary: Vocabulary, config: TinyModelConfig = TinyModelConfig()
) -> CtcModel:
    """A randomly initialized Wav2Vec2ForCTC: 7 conv layers with strides 5,2,2,2,2,2,2 (320)."""
    torch.manual_seed(config.seed)
    network_config = Wav2Vec2Config(
        vocab_size=len(vocabulary),
        pad_token_id=vocabulary.pad_id,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        conv_dim=(config.conv_channels,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",  # as in XLS-R and MMS: padding is masked, not just zeros
        do_stable_layer_norm=True,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
    )
    return CtcModel(
        Wav2Vec2ForCTC(network_config).eval(), vocabulary, wav2vec2_feature_extractor(True)
    )


def ctc_model_from_encoder(
    source: str | Path, vocabulary: Vocabulary, *, allow_download: bool = False
) -> CtcModel:
    """Load a pretrained speech encoder and put a fresh CTC head sized to `vocabulary` on it.

    `source` is a local checkpoint directory, or a hub id when `allow_download` is true and
    HF_HUB_OFFLINE is not set. Any head the checkpoint has is replaced: its tokens are not ours.
    Raises ModelNotAvailable instead of waiting on a network that is not there.
    """
    local_directory = _resolve(source, allow_download)
    try:
        network = AutoModelForCTC.from_pretrained(
            local_directory or str(source),
            vocab_size=len(vocabulary),
            pad_token_id=vocabulary.pad_id,
            ctc_loss_reduction="mean",
            ctc_zero_infinity=True,  # silences the inf losses of clips shorter than their labels
            ignore_mismatched_sizes=True,
            local_files_only=local_directory is not None,
        )
    except (OSError, ValueError) as error:  # missing files, no connection, unknown model type
        raise ModelNotAvailable(f"{source}: could not be loaded ({error})") from error
    if network.main_input_name != "input_values":
        raise ValueError(f"{source}: reads {network.main_input_name}, not raw waveforms")
    head = network.lm_head
    torch.nn.init.normal_(head.weight, std=network.config.initializer_range)
    torch.nn.init.zeros_(head.bias)
    # data2vec-audio has no feat_extract_norm: its conv stack always uses layer norm
    layer_norm_encoder = getattr(network.config, "feat_extract_norm", "layer") == "layer"
    feature_extractor = wav2vec2_feature_extractor(layer_norm_encoder)
    if local_directory and (Path(local_directory) / "preprocessor_config.json").is_file():
        feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(local_directory)
    return CtcModel(network.eval(), vocabulary, feature_extractor)


def save_pretrained_ctc_model(model: CtcModel, directory: str | Path) -> None:
    """Write a standard transformers directory: model, vocab.json, tokenizer, feature
    extractor. (asr.checkpoint.save_ctc_model picks this or the Whisper format.)"""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.network.save_pretrained(directory)
    model.vocabulary.save(directory / "vocab.json")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(directory / "vocab.json"),
        unk_token=UNK,
        pad_token=PAD,
        word_delimiter_token=WORD_DELIMITER,
        bos_token=None,  # no sentence markers: they would add outputs the head does not have
        eos_token=None,
    )
    Wav2Vec2Processor(
        feature_extractor=model.feature_extractor, tokenizer=tokenizer
    ).save_pretrained(directory)


def load_pretrained_ctc_model(directory: str | Path) -> CtcModel:
    """Load what save_pretrained_ctc_model wrote. Other CTC models' vocabularies (`<pad>`,
    `<s>`...) are not ours: start from their encoder with ctc_model_from_encoder instead."""
    directory = Path(directory)
    network = AutoModelForCTC.from_pretrained(directory, local_files_only=True)
    vocabulary = Vocabulary.load(directory / "vocab.json")
    feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(directory)
    return CtcModel(network.eval(), vocabulary, feature_extractor)


def _resolve(source: str | Path, allow_download: bool) -> str | None:
    """The local directory for `source`, or None when it is a hub id we may download."""
    if Path(source).is_dir():
        return str(source)
    if Path(source).exists() or str(source).startswith((".", "/", "~")):
        raise ModelNotAvailable(f"{source}: not a checkpoint directory")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelNotAvailable(f"{source}: not a local directory, and HF_HUB_OFFLINE is set")
    if not allow_download:
        raise ModelNotAvailable(
            f"{source}: not a local directory; downloading from the hub is switched off here"
        )
    return None


def wav2vec2_feature_extractor(layer_norm_encoder: bool) -> Wav2Vec2FeatureExtractor:
    # Encoders with group norm in the conv stack (wav2vec2-base) are trained on zero-padded
    # batches without a mask; layer-norm ones (XLS-R, MMS) expect the mask.
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=layer_norm_encoder,
    )


# --- inference --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceConfig:
    max_batch_seconds: float = 160.0  # padded audio per batch: bounds memory
    max_batch_size: int = 16
    device: str = "cpu"


@dataclass(frozen=True)
class ClipTranscript:
    text: str
    token_confidences: list[float]
    least_confidence: float
    mean_frame_entropy: float
    top2_margin_uncertainty: float
    embedding: np.ndarray  # (H,) mean of the encoder's last hidden states over the clip
    greedy_text: str = ""  # greedy CTC decoding, also when `text` came from another decoder


def length_buckets(
    lengths: Sequence[int], max_batch_samples: int, max_batch_size: int
) -> list[list[int]]:
    """Group indices by similar length so batches carry little padding.

    Sorted by length; a batch closes when one more item would push its padded size
    (longest item x count) past max_batch_samples, or its count past max_batch_size. An item
    longer than max_batch_samples gets a batch of its own.
    """
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        batch = batches[-1] if batches else None
        fits = batch is not None and len(batch) < max_batch_size
        if fits and lengths[index] * (len(batch) + 1) > max_batch_samples:
            fits = False
        if fits:
            batch.append(index)
        else:
            batches.append([index])
    return batches


@torch.no_grad()
def transcribe_clips(
    model: CtcModel,
    clips: Sequence[np.ndarray],
    config: InferenceConfig = InferenceConfig(),
    decode: Callable[[torch.Tensor], str] | None = None,
) -> list[ClipTranscript]:
    """Clips of 16 kHz mono samples, each (n_i,) -> a transcript per clip, in input order.

    The text is greedy CTC decoding unless `decode` (a clip's (T, V) log-probs -> text, e.g.
    asr.lm.LexiconDecoder.decode) is given; confidences, scores and `greedy_text` stay the
    greedy ones.
    Clips under 0.1 s are padded with silence: the conv stack needs 400 samples for a frame.
    """
    clips = [_at_least(np.asarray(clip, np.float32), SAMPLE_RATE // 10) for clip in clips]
    network = model.network.to(config.device).eval()
    results: list[ClipTranscript | None] = [None] * len(clips)
    buckets = length_buckets(
        [len(clip) for clip in clips],
        int(config.max_batch_seconds * SAMPLE_RATE),
        config.max_batch_size,
    )
    for batch_indices in buckets:
        features = model.feature_extractor(
            [clips[index] for index in batch_indices],
            sampling_rate=SAMPLE_RATE,
            padding="longest",
            return_tensors="pt",
        )
        input_values = features["input_values"].to(config.device)  # (B, n_max)
        attention_mask = features.get("attention_mask")
        if attention_mask is not None:
            attention_mask = attention_mask.to(config.device)
        output = network(input_values, attention_mask=attention_mask, output_hidden_states=True)
        log_probs = torch.log_softmax(output.logits.float(), dim=-1).cpu()  # (B, T, V)
        hidden = output.hidden_states[-1].float().cpu()  # (B, T, H)
        sample_lengths = torch.tensor([len(clips[index]) for index in batch_indices])
        frame_lengths = network._get_feat_extract_output_lengths(sample_lengths).tolist()

        for row, (index, frames) in enumerate(zip(batch_indices, frame_lengths, strict=True)):
            clip_log_probs = log_probs[row, :frames]  # (T_i, V)
            hypothesis = ctc_greedy_decode(clip_log_probs, blank_id=model.vocabulary.pad_id)
            greedy = model.vocabulary.decode(hypothesis.token_ids)
            results[index] = ClipTranscript(
                text=decode(clip_log_probs) if decode else greedy,
                token_confidences=hypothesis.token_confidences,
                least_confidence=least_confidence(clip_log_probs),
                mean_frame_entropy=mean_frame_entropy(clip_log_probs),
                top2_margin_uncertainty=top2_margin_uncertainty(clip_log_probs),
                embedding=hidden[row, :frames].mean(dim=0).numpy(),
                greedy_text=greedy,
            )
    return results  # type: ignore[return-value]


def _at_least(samples: np.ndarray, length: int) -> np.ndarray:
    return np.pad(samples, (0, max(length - len(samples), 0)))


def transcribe_recording(
    model: CtcModel,
    samples: np.ndarray,
    segment_config: SegmentConfig | None = None,
    inference_config: InferenceConfig = InferenceConfig(),
    decode: Callable[[torch.Tensor], str] | None = None,
) -> list[tuple[ClipSpan, ClipTranscript]]:
    """A long recording (n,) at 16 kHz -> its speech clips, each with where it lies and its text
    (`decode`: as in transcribe_clips)."""
    spans = segment_speech(samples, segment_config or SegmentConfig())
    transcripts = transcribe_clips(
        model, [samples[span.start : span.end] for span in spans], inference_config, decode
    )
    return list(zip(spans, transcripts, strict=True))
