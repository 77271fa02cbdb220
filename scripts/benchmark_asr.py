"""Speed of the speech library: audio seconds processed per wall-clock second.

    python scripts/benchmark_asr.py            # CPU at 1 and 2 threads, and CUDA if present
    python scripts/benchmark_asr.py --quick    # smaller pools, fewer models

Every model is randomly initialized from a config: the figures are speed only, nothing about
accuracy. "score" is pool scoring as the app runs it (asr.model.transcribe_clips: bucketed
batches, greedy decoding, three uncertainty scores, embeddings); "train" is optimizer steps
of asr.finetune's loop (get_batch, ctc_loss, AdamW) with the feature encoder frozen. Two
"what if" rows run only part of the network on cached inputs: the transformer on cached
conv features (valid while the feature encoder stays frozen), and only the top 2 layers on
cached hidden states (valid if the layers below stay frozen).
"""

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    WhisperConfig,
    WhisperFeatureExtractor,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.finetune import ctc_loss, get_batch  # noqa: E402
from asr.model import CtcModel, InferenceConfig, build_tiny_ctc_model, transcribe_clips  # noqa: E402
from asr.text import TextRules, vocabulary_from_texts  # noqa: E402

VOCABULARY = vocabulary_from_texts(["abcdefghijklmnopqrstuvwxyz'"], TextRules())

# name -> Wav2Vec2Config overrides; group norm in the conv stack as in wav2vec2-base,
# layer norm as in XLS-R and MMS (same sizes otherwise)
WAV2VEC2_SIZES = {
    "wav2vec2-base (95M, group-norm conv)": {},
    "wav2vec2-base (95M, layer-norm conv, as XLS-R/MMS)": dict(
        feat_extract_norm="layer", do_stable_layer_norm=True
    ),
    "wav2vec2 small (13M: 384 wide, 6 layers, conv 256)": dict(
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=1536,
        conv_dim=(256,) * 7,
    ),
    "wav2vec2 mini (4M: 256 wide, 4 layers, conv 128)": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        conv_dim=(128,) * 7,
    ),
}


def wav2vec2_model(overrides: dict) -> CtcModel:
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(VOCABULARY), pad_token_id=0, **overrides)
    features = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=config.feat_extract_norm == "layer",  # as asr.model does
    )
    return CtcModel(Wav2Vec2ForCTC(config).eval(), VOCABULARY, features)


def pool(total_seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Noise clips of 2-10 s (what segmentation makes), total_seconds in all."""
    rng = np.random.default_rng(seed)
    clips, seconds = [], 0.0
    while seconds < total_seconds:
        length = rng.uniform(2.0, 10.0)
        clips.append(rng.normal(0, 0.1, int(length * SAMPLE_RATE)).astype(np.float32))
        seconds += length
    return clips


def best_rate(run: Callable[[], None], audio_seconds: float, repeats: int) -> float:
    """Audio seconds per second: the best of `repeats` timed runs after one warm-up run.
    The best, because the machine is shared and slow runs measure the neighbours."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return audio_seconds / min(times)


def score_rate(model: CtcModel, clips: list[np.ndarray], device: str, repeats: int) -> float:
    config = InferenceConfig(device=device)
    audio = sum(len(clip) for clip in clips) / SAMPLE_RATE
    return best_rate(lambda: transcribe_clips(model, clips, config), audio, repeats)


@torch.no_grad()
def cached_rates(model: CtcModel, device: str, repeats: int) -> tuple[float, float]:
    """(transformer on cached conv features, top 2 layers on cached hidden states), 4 x 8 s."""
    network = model.network.to(device)
    audio = torch.randn(4, 8 * SAMPLE_RATE, device=device)
    conv_features = network.wav2vec2.feature_extractor(audio)  # (B, C, T)
    hidden = network.wav2vec2.feature_projection(conv_features.transpose(1, 2))[0]  # (B, T, H)

    def transformer_only() -> None:
        projected = network.wav2vec2.feature_projection(conv_features.transpose(1, 2))[0]
        network.lm_head(network.wav2vec2.encoder(projected)[0]).log_softmax(-1)
        _sync(device)

    def top_two_layers() -> None:
        states = hidden
        for layer in network.wav2vec2.encoder.layers[-2:]:
            output = layer(states)
            states = output[0] if isinstance(output, tuple) else output  # tuples before v5
        network.lm_head(states).log_softmax(-1)
        _sync(device)

    return best_rate(transformer_only, 32.0, repeats), best_rate(top_two_layers, 32.0, repeats)


@torch.no_grad()
def whisper_encoder_rate(device: str, repeats: int) -> float:
    """A Whisper-base-sized encoder (6 x 512, about 20M) with a CTC head on 4 x 8 s windows,
    log-mel features included (transformers' WhisperFeatureExtractor)."""
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=512,
        encoder_layers=6,
        encoder_attention_heads=8,
        encoder_ffn_dim=2048,
        num_mel_bins=80,
        max_source_positions=400,  # 8 s: the positional table cut to the window
    )
    encoder = WhisperEncoder(config).eval().to(device)
    head = torch.nn.Linear(512, len(VOCABULARY)).to(device)
    features = WhisperFeatureExtractor(feature_size=80, chunk_length=8)
    clips = [np.random.default_rng(i).normal(0, 0.1, 8 * SAMPLE_RATE) for i in range(4)]

    def run() -> None:
        mel = features(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        head(encoder(mel.to(device)).last_hidden_state).log_softmax(-1)
        _sync(device)

    return best_rate(run, 32.0, repeats)


def train_rate(
    model: CtcModel, clips: list[np.ndarray], batch_size: int, device: str, steps: int
) -> float:
    """Audio seconds per second over `steps` optimizer steps of batch_size clips."""
    network = model.network.to(device).train()
    network.freeze_feature_encoder()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-5)
    labels = [VOCABULARY.encode("the quick brown fox " * int(len(c) / SAMPLE_RATE)) for c in clips]
    batches = [list(range(i, i + batch_size)) for i in range(0, steps * batch_size, batch_size)]
    audio = sum(len(clips[i]) for batch in batches for i in batch) / SAMPLE_RATE

    def run() -> None:
        for indices in batches:
            batch = get_batch(model, clips, labels, indices, torch.device(device))
            ctc_loss(network, batch, VOCABULARY.pad_id).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        _sync(device)

    rate = best_rate(run, audio, 1)
    network.eval()
    return rate


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller pools, fewer models")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    cpu_name = platform.processor() or platform.machine()
    print(f"# {platform.node()}: {cpu_name}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    # the machine may be shared: a load average over the CPU count means contended figures
    print("# load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    big_pool = pool(30.0 if args.quick else 60.0)
    small_pool = pool(120.0 if args.quick else 300.0)
    train_clips = [clip[: 4 * SAMPLE_RATE] for clip in pool(300.0) if len(clip) >= 4 * SAMPLE_RATE]
    sizes = dict(WAV2VEC2_SIZES)
    if args.quick:
        sizes.pop("wav2vec2-base (95M, layer-norm conv, as XLS-R/MMS)")

    print("| device | threads | model | what | audio s per s |")
    print("| --- | --- | --- | --- | ---: |")
    for device in devices:
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)

            def row(model_name: str, what: str, rate: float, _d=device, _t=threads) -> None:
                print(f"| {_d} | {_t} | {model_name} | {what} | {rate:.1f} |", flush=True)

            tiny = build_tiny_ctc_model(VOCABULARY)
            row("tiny test model", "score", score_rate(tiny, small_pool, device, 3))
            row(
                "tiny test model",
                "train (batch 8 x 4 s)",
                train_rate(tiny, train_clips, 8, device, 3),
            )
            for name, overrides in sizes.items():
                model = wav2vec2_model(overrides)
                big = "base" in name
                clips = big_pool if big else small_pool
                row(name, "score", score_rate(model, clips, device, 1 if big else 3))
                if big:
                    transformer_only, top_two = cached_rates(model, device, 2)
                    row(name, "score, conv features cached", transformer_only)
                    row(name, "score, top 2 layers on cached states", top_two)
                batch = 4 if big else 8
                steps = 2 if big else 3
                what = f"train (batch {batch} x 4 s, conv frozen)"
                row(name, what, train_rate(model, train_clips, batch, device, steps))
            row(
                "whisper-base-sized encoder + CTC head",
                "score (8 s windows)",
                whisper_encoder_rate(device, 3),
            )
    print("\n# load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
