import time

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCTC,
    AutoProcessor,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

from asr.audio import SAMPLE_RATE, SegmentConfig, decode_audio
from asr.checkpoint import load_ctc_model, save_ctc_model
from asr.model import (
    InferenceConfig,
    ModelNotAvailable,
    build_tiny_ctc_model,
    ctc_model_from_encoder,
    length_buckets,
    transcribe_clips,
    transcribe_recording,
)
from asr.text import TextRules, vocabulary_from_texts

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
ENCODERS = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
}


@pytest.fixture
def vocabulary():
    return vocabulary_from_texts(["habari yako ndiyo"], TextRules())


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


def test_tiny_model_emits_one_frame_per_20_ms_over_the_vocabulary(vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    with torch.no_grad():
        logits = model.network(torch.from_numpy(noise(1.0))[None]).logits
    assert logits.shape == (1, 49, len(vocabulary))  # 16000 samples / stride 320, less edges


@pytest.mark.parametrize("family", sorted(ENCODERS))
def test_any_waveform_encoder_gets_a_ctc_head_sized_to_the_vocabulary(tmp_path, vocabulary, family):
    config_class, model_class = ENCODERS[family]
    torch.manual_seed(0)
    encoder = model_class(config_class(**TINY))
    encoder.save_pretrained(tmp_path / family)

    model = ctc_model_from_encoder(tmp_path / family, vocabulary)

    assert model.network.lm_head.out_features == len(vocabulary)
    assert model.network.config.pad_token_id == vocabulary.pad_id
    saved = encoder.state_dict()
    loaded = model.network.state_dict()
    for name in (
        "encoder.layers.0.attention.k_proj.weight",
        "feature_projection.projection.weight",
    ):
        assert torch.equal(loaded[f"{model.network.base_model_prefix}.{name}"], saved[name])


def test_an_existing_ctc_head_is_replaced_even_when_its_size_matches(tmp_path, vocabulary):
    old = Wav2Vec2ForCTC(Wav2Vec2Config(**TINY, vocab_size=len(vocabulary)))
    torch.nn.init.constant_(old.lm_head.weight, 0.5)
    old.save_pretrained(tmp_path / "english-ctc")

    model = ctc_model_from_encoder(tmp_path / "english-ctc", vocabulary)

    assert not torch.any(model.network.lm_head.weight == 0.5)
    assert model.network.config.ctc_zero_infinity


def test_a_hub_id_is_refused_at_once_when_downloads_are_off(vocabulary):
    started = time.monotonic()
    with pytest.raises(ModelNotAvailable, match="downloading .* switched off"):
        ctc_model_from_encoder("facebook/wav2vec2-xls-r-300m", vocabulary)
    assert time.monotonic() - started < 1


def test_a_hub_id_is_refused_at_once_when_hf_hub_offline_is_set(vocabulary, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE"):
        ctc_model_from_encoder("facebook/mms-300m", vocabulary, allow_download=True)
    assert time.monotonic() - started < 1


def test_a_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path, vocabulary):
    with pytest.raises(ModelNotAvailable, match="not a checkpoint directory"):
        ctc_model_from_encoder(str(tmp_path / "no-such-model"), vocabulary, allow_download=True)


def test_a_saved_model_loads_back_with_plain_transformers(tmp_path, vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    save_ctc_model(model, tmp_path / "round-3")
    audio = noise(1.5)

    processor = AutoProcessor.from_pretrained(tmp_path / "round-3")
    network = AutoModelForCTC.from_pretrained(tmp_path / "round-3").eval()
    inputs = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    with torch.no_grad():
        theirs = network(**inputs).logits
        ours = model.network(**inputs).logits

    assert torch.allclose(theirs, ours)
    assert len(processor.tokenizer) == len(vocabulary)
    ids = vocabulary.encode("habari yako")
    assert processor.tokenizer.decode(ids, group_tokens=False) == "habari yako"


def test_save_then_load_keeps_weights_vocabulary_and_feature_extraction(tmp_path, vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    save_ctc_model(model, tmp_path / "model")

    loaded = load_ctc_model(tmp_path / "model")

    assert loaded.vocabulary == vocabulary
    assert loaded.feature_extractor.return_attention_mask
    clip = noise(2.0)
    [before] = transcribe_clips(model, [clip])
    [after] = transcribe_clips(loaded, [clip])
    assert after.text == before.text
    assert np.allclose(after.embedding, before.embedding, atol=1e-5)


def test_loading_a_directory_without_vocab_is_refused(tmp_path):
    with pytest.raises(ModelNotAvailable, match="vocab.json"):
        load_ctc_model(tmp_path)


def test_length_buckets_cover_every_clip_once_within_the_limits():
    lengths = [5, 100, 7, 90, 6, 300, 95, 8]
    buckets = length_buckets(lengths, max_batch_samples=200, max_batch_size=3)

    assert sorted(index for bucket in buckets for index in bucket) == list(range(len(lengths)))
    for bucket in buckets:
        assert len(bucket) <= 3
        assert max(lengths[i] for i in bucket) * len(bucket) <= 200 or len(bucket) == 1
    assert sorted(lengths[i] for i in buckets[0]) == [5, 6, 7]  # short clips batch together


def test_batched_transcription_matches_one_clip_at_a_time_in_input_order(vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    clips = [noise(seconds, seed) for seed, seconds in enumerate([2.5, 0.7, 1.9, 4.0, 1.1])]

    batched = transcribe_clips(model, clips, InferenceConfig(max_batch_size=4))
    single = [transcribe_clips(model, [clip])[0] for clip in clips]

    for one, alone in zip(batched, single, strict=True):
        assert one.text == alone.text
        assert one.mean_frame_entropy == pytest.approx(alone.mean_frame_entropy, rel=1e-4)
        assert np.allclose(one.embedding, alone.embedding, atol=1e-4)
    assert batched[0].embedding.shape == (32,)


def test_very_short_and_empty_clips_still_get_a_transcript(vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    results = transcribe_clips(model, [noise(0.01), np.zeros(0, np.float32), noise(1.0)])
    assert len(results) == 3
    assert all(np.isfinite(result.embedding).all() for result in results)
    assert transcribe_clips(model, []) == []


def model_that_always_says_a(vocabulary):
    model = build_tiny_ctc_model(vocabulary)
    head = model.network.lm_head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[vocabulary.tokens.index("a")] = 30.0
    return model


def test_a_head_that_always_says_a_yields_text_a_with_full_confidence(vocabulary):
    model = model_that_always_says_a(vocabulary)

    [result] = transcribe_clips(model, [noise(1.0)])

    assert result.text == "a"  # every frame says a: one run, one token
    assert result.token_confidences == pytest.approx([1.0])
    assert result.least_confidence == pytest.approx(0.0, abs=1e-6)


def test_a_recording_is_transcribed_clip_by_clip_with_offsets(vocabulary, real_speech):
    pieces, starts = [], []
    for path, _ in real_speech[:3]:
        starts.append(sum(len(piece) for piece in pieces) / SAMPLE_RATE)
        pieces += [decode_audio(path), np.zeros(SAMPLE_RATE, np.float32)]
    recording = np.concatenate(pieces)

    results = transcribe_recording(build_tiny_ctc_model(vocabulary), recording, SegmentConfig())

    assert len(results) == 3
    assert all(isinstance(transcript.text, str) for _, transcript in results)
    for (span, _), start in zip(results, starts, strict=True):
        assert abs(span.start_seconds - start) < 0.5


def test_a_directory_that_is_not_a_checkpoint_is_reported_as_unavailable(tmp_path, vocabulary):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(ModelNotAvailable, match="could not be loaded"):
        ctc_model_from_encoder(tmp_path / "notes", vocabulary)


def test_another_decoder_writes_the_text_and_the_greedy_text_stays(vocabulary):
    model = model_that_always_says_a(vocabulary)
    frames = []

    def decode(log_probs):
        frames.append(log_probs.shape)
        return "from the decoder"

    [greedy] = transcribe_clips(model, [noise(1.0)])
    [decoded] = transcribe_clips(model, [noise(1.0)], decode=decode)

    assert (greedy.text, greedy.greedy_text) == ("a", "a")
    assert (decoded.text, decoded.greedy_text) == ("from the decoder", "a")
    assert decoded.mean_frame_entropy == greedy.mean_frame_entropy
    assert len(frames) == 1 and frames[0][1] == len(vocabulary.tokens)
