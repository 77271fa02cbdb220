"""Seconds per training step of the default Whisper CTC model with the encoder frozen and
with its top layers training, the layers below cached as a round caches them. Prints
figures; asserts nothing.

    .venv/bin/python scripts/benchmark_top_layers.py              # batch 16 of 4 s, one thread
    .venv/bin/python scripts/benchmark_top_layers.py --layers 0,1,2 --steps 5 --threads 2

The clips are noise (speed only, nothing about accuracy); each run's first step, which fills
the cache, is left out of the median.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.finetune import ctc_loss, get_batch  # noqa: E402
from asr.text import TextRules, vocabulary_from_texts  # noqa: E402
from asr.whisper import (  # noqa: E402
    WhisperEncoder,
    WhisperWeightsMissing,
    cache_encoder_outputs,
    load_whisper_base_encoder,
    unfreeze_top_layers,
    whisper_ctc_model,
)


def step_seconds(encoder, trained_layers: int, batch_size: int, seconds: float, steps: int):
    vocabulary = vocabulary_from_texts(["abcdefghijklmnopqrstuvwxyz"], TextRules())
    model = whisper_ctc_model(vocabulary, encoder=encoder)
    cache_encoder_outputs(model.network, {})
    if trained_layers:
        unfreeze_top_layers(model, trained_layers)
    network = model.network.train()
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)] * batch_size
    clips = [clip + rng.normal(0, 0.01, clip.shape).astype(np.float32) for clip in clips]
    labels = [vocabulary.encode("habari yako rafiki")] * batch_size
    batch = get_batch(model, clips, labels, range(batch_size), torch.device("cpu"))
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = ctc_loss(network, batch, vocabulary.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]), sum(p.numel() for p in trainable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="0,1,2", help="top layers training, per run")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        encoder, weights = load_whisper_base_encoder(), "Whisper-base weights"
    except WhisperWeightsMissing:
        encoder, weights = WhisperEncoder().requires_grad_(False), "random weights"
    print(f"{weights}; batch {args.batch_size} of {args.clip_seconds:g} s; "
          f"{args.threads} thread(s); median of {args.steps} steps")  # fmt: skip
    for layers in (int(k) for k in args.layers.split(",")):
        seconds, parameters = step_seconds(
            encoder, layers, args.batch_size, args.clip_seconds, args.steps
        )
        print(f"top layers training: {layers}  {seconds:.2f} s a step  "
              f"{parameters / 1e6:.1f}M parameters train")  # fmt: skip


if __name__ == "__main__":
    main()
