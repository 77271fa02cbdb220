import hashlib
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from asr.audio import SAMPLE_RATE, decode_audio
from asr.finetune import get_batch
from asr.model import transcribe_clips
from asr.text import TextRules, normalize_text, vocabulary_from_texts
from asr.whisper import (
    WHISPER_BASE_SHA256,
    Ctranslate2Model,
    LogMel,
    WhisperCtcHeadConfig,
    WhisperEncoder,
    WhisperEncoderConfig,
    WhisperWeightsInvalid,
    WhisperWeightsMissing,
    ctranslate2_encoder_names,
    load_whisper_base_encoder,
    load_whisper_ctc_model,
    parse_ctranslate2_model,
    read_verified_bytes,
    save_whisper_ctc_model,
    whisper_ctc_model,
    whisper_encoder_from_ctranslate2,
    whisper_frame_count,
    write_ctranslate2_model,
)
from tests.conftest import head_trained

TINY = WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64)
TINY_HEAD = WhisperCtcHeadConfig(
    encoder_layers=(2,), width=32, layers=1, heads=2, ffn_width=64, dropout=0.0
)
RULES = TextRules(strip_characters=",.?!;:\"'")


@pytest.fixture(scope="module")
def base_encoder() -> WhisperEncoder:
    try:
        return load_whisper_base_encoder()
    except WhisperWeightsMissing as error:
        pytest.skip(f"Whisper-base weights not installed ({error})")


def tiny_encoder(seed: int = 0) -> WhisperEncoder:
    torch.manual_seed(seed)
    encoder = WhisperEncoder(TINY)
    with torch.no_grad():
        encoder.positions.normal_(std=0.1)
    return encoder.requires_grad_(False).eval()


@torch.no_grad()
def encoder_outputs(model, clips) -> list[torch.Tensor]:
    """Each clip's encoder outputs (T_i, 512) or (T_i, L, 512), from one zero-padded batch as
    training and scoring pad them (asr.finetune.get_batch)."""
    batch = get_batch(model, clips, [[]] * len(clips), range(len(clips)), torch.device("cpu"))
    hidden, frames = model.network.encode(batch.input_values, batch.attention_mask)
    return [hidden[row, : frames[row]] for row in range(len(clips))]


def ctranslate2_file_from(encoder: WhisperEncoder) -> Ctranslate2Model:
    """A WhisperSpec model.bin as CTranslate2 would write it: float16 weights, int16 num_heads."""
    state = encoder.state_dict()
    variables = {
        theirs: state[ours].numpy().astype(np.float16)
        for ours, theirs in ctranslate2_encoder_names(encoder.config).items()
    }
    variables["encoder/num_heads"] = np.array(encoder.config.heads, np.int16)
    variables["decoder/embeddings/weight"] = np.ones((5, 4), np.float16)
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    return Ctranslate2Model(6, "WhisperSpec", 3, variables, aliases)


# --- weights file -------------------------------------------------------------------------------


def test_it_rejects_a_model_bin_with_the_wrong_checksum(tmp_path: Path):
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"not whisper" * 100)
    with pytest.raises(WhisperWeightsInvalid, match="sha256 .* expected " + WHISPER_BASE_SHA256):
        read_verified_bytes([fake], size=None)


def test_it_rejects_a_model_bin_of_the_wrong_size_before_reading_it(tmp_path: Path):
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"\0" * 1000)
    with pytest.raises(WhisperWeightsInvalid, match="1000 bytes, expected 145217532"):
        load_whisper_base_encoder([fake])


def test_it_accepts_parts_whose_concatenation_has_the_checksum(tmp_path: Path):
    (tmp_path / "a").write_bytes(b"hello ")
    (tmp_path / "b").write_bytes(b"world")
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert read_verified_bytes([tmp_path / "a", tmp_path / "b"], digest, 11) == b"hello world"


def test_the_parser_round_trips_a_small_ctranslate2_file(tmp_path: Path):
    variables = {
        "encoder/w": np.arange(6, dtype=np.float16).reshape(2, 3) / 4,
        "encoder/b": np.array([1.5, -2.0], np.float32),
        "encoder/q": np.array([[-3, 4]], np.int8),
        "encoder/num_heads": np.array(8, np.int16),
        "decoder/x": np.ones(3, np.int32),
    }
    written = Ctranslate2Model(6, "WhisperSpec", 3, variables, {"decoder/y": "decoder/x"})
    write_ctranslate2_model(tmp_path / "model.bin", written)

    read = parse_ctranslate2_model((tmp_path / "model.bin").read_bytes())

    assert (read.binary_version, read.spec_name, read.spec_revision) == (6, "WhisperSpec", 3)
    assert read.aliases == {"decoder/y": "decoder/x"}
    assert list(read.variables) == list(variables)
    for name, value in variables.items():
        assert read.variables[name].shape == value.shape
        np.testing.assert_array_equal(read.variables[name], value)
    assert read.variables["encoder/w"].dtype == np.float32  # float16 is widened
    assert read.variables["encoder/q"].dtype == np.int8
    only_encoder = parse_ctranslate2_model((tmp_path / "model.bin").read_bytes(), "encoder/")
    assert sorted(only_encoder.variables) == sorted(n for n in variables if n.startswith("enc"))


def test_the_parser_refuses_a_truncated_file_and_an_unknown_version(tmp_path: Path):
    model = Ctranslate2Model(6, "WhisperSpec", 3, {"a": np.ones((4, 4), np.float32)})
    write_ctranslate2_model(tmp_path / "model.bin", model)
    data = (tmp_path / "model.bin").read_bytes()
    with pytest.raises(WhisperWeightsInvalid, match="ends"):
        parse_ctranslate2_model(data[:-30])
    with pytest.raises(WhisperWeightsInvalid, match="binary version 99"):
        parse_ctranslate2_model((99).to_bytes(4, "little") + data[4:])


def test_it_builds_an_encoder_from_a_whisper_spec_file_and_checks_shapes(tmp_path: Path):
    original = tiny_encoder()
    file = ctranslate2_file_from(original)
    write_ctranslate2_model(tmp_path / "model.bin", file)

    parsed = parse_ctranslate2_model((tmp_path / "model.bin").read_bytes(), "encoder/")
    encoder = whisper_encoder_from_ctranslate2(parsed)

    assert encoder.config == TINY
    for name, value in original.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[name], value, atol=1e-2, rtol=1e-2)
    parsed.variables["encoder/layer_1/ffn/linear_0/bias"] = np.zeros(63, np.float32)
    with pytest.raises(WhisperWeightsInvalid, match="layer_1/ffn/linear_0/bias: shape"):
        whisper_encoder_from_ctranslate2(parsed)


# --- features and encoder -----------------------------------------------------------------------


def test_log_mel_matches_transformers_whisper_feature_extractor(real_speech):
    samples = decode_audio(real_speech[0][0])
    log_mel, mel_lengths = LogMel()(torch.from_numpy(samples)[None], torch.tensor([len(samples)]))
    reference = WhisperFeatureExtractor()(samples, sampling_rate=SAMPLE_RATE)["input_features"][0]

    frames = int(mel_lengths[0])
    assert log_mel.shape == (1, 80, len(samples) // 160)
    np.testing.assert_allclose(log_mel[0].numpy(), reference[:, :frames], atol=1e-4)


@pytest.mark.parametrize("sample_count", [400, 479, 480, 640, 16000, 16001, 80000, 123457])
def test_the_encoder_gives_50_frames_per_second_at_any_length(sample_count: int):
    network = whisper_ctc_model(vocabulary_from_texts(["ab"], RULES), TINY_HEAD, tiny_encoder())
    samples = np.random.default_rng(0).normal(0, 0.1, sample_count).astype(np.float32)

    (hidden,) = encoder_outputs(network, [samples])

    assert hidden.shape == (whisper_frame_count(sample_count), 32)
    assert network.network._get_feat_extract_output_lengths(torch.tensor(sample_count)) == len(
        hidden
    )


def test_a_clip_encodes_the_same_alone_and_in_a_padded_batch():
    model = whisper_ctc_model(vocabulary_from_texts(["ab"], RULES), TINY_HEAD, tiny_encoder())
    rng = np.random.default_rng(1)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 20000, 3300)]

    batched = encoder_outputs(model, clips)
    alone = [encoder_outputs(model, [clip])[0] for clip in clips]

    for one, other in zip(batched, alone, strict=True):
        torch.testing.assert_close(one, other, atol=1e-4, rtol=1e-4)


def test_the_real_encoder_loads_verified_with_sane_weights(base_encoder: WhisperEncoder):
    assert sum(p.numel() for p in base_encoder.parameters()) == 20_593_664
    assert not any(p.requires_grad for p in base_encoder.parameters())
    for layer in base_encoder.layers:
        assert 0.3 < float(layer.attention_norm.weight.mean()) < 3.0  # layer norms scale ~1


def test_the_real_encoder_separates_speech_from_silence(base_encoder, real_speech):
    speech = decode_audio(next(path for path, _ in real_speech if path.name == "card-004.wav"))
    silence = np.zeros(SAMPLE_RATE, np.float32)
    top_layer = replace(TINY_HEAD, encoder_layers=(6,))
    model = whisper_ctc_model(vocabulary_from_texts(["ab"], RULES), top_layer, base_encoder)

    (hidden,) = encoder_outputs(model, [np.concatenate([silence, speech, silence])])

    total = 2 * SAMPLE_RATE + len(speech)
    assert hidden.shape == (whisper_frame_count(total), 512)
    assert torch.isfinite(hidden).all()
    # Nearest centroid, fitted on the leading silence and the first half of the speech, must
    # place the held-out trailing silence and second half right. (A random encoder with the same
    # positional embedding calls every silent frame speech.)
    frames = torch.nn.functional.normalize(hidden, dim=-1)
    spoken = frames[60 : 50 + len(speech) // 320 - 10]
    silence_centroid = frames[5:45].mean(0)
    speech_centroid = spoken[: len(spoken) // 2].mean(0)

    def share_nearer_speech(part: torch.Tensor) -> float:
        return float(((part @ speech_centroid) > (part @ silence_centroid)).float().mean())

    assert share_nearer_speech(frames[-45:-5]) < 0.1
    assert share_nearer_speech(spoken[len(spoken) // 2 :]) > 0.9


@pytest.mark.skipif(
    importlib.util.find_spec("ctranslate2") is None, reason="the ctranslate2 wheel is not installed"
)
def test_the_real_encoder_matches_ctranslate2(base_encoder, real_speech, tmp_path: Path):
    import ctranslate2

    from asr.whisper import whisper_base_parts

    (tmp_path / "model.bin").write_bytes(b"".join(p.read_bytes() for p in whisper_base_parts()))
    config = whisper_base_parts()[0].parent / "config.json"
    (tmp_path / "config.json").write_bytes(config.read_bytes())
    (tmp_path / "vocabulary.txt").write_bytes((config.parent / "vocabulary.txt").read_bytes())
    reference = ctranslate2.models.Whisper(str(tmp_path), compute_type="float32", intra_threads=2)
    samples = decode_audio(real_speech[1][0])[: 320 * 90]  # an even number of mel frames
    log_mel, mel_lengths = LogMel()(torch.from_numpy(samples)[None], torch.tensor([len(samples)]))

    with torch.no_grad():
        ours, _ = base_encoder(log_mel, mel_lengths)
    theirs = reference.encode(ctranslate2.StorageView.from_array(log_mel.numpy()), to_cpu=True)

    np.testing.assert_allclose(ours[0].numpy(), np.array(theirs)[0], atol=2e-3, rtol=2e-3)


# --- CTC on top ----------------------------------------------------------------------------------


def test_save_and_load_round_trip_the_head_and_unfrozen_layers(tmp_path: Path):
    vocabulary = vocabulary_from_texts(["hello world"], RULES)
    head = replace(TINY_HEAD, encoder_layers=(1, 2), unfreeze_top_layers=1)
    shared = tiny_encoder()
    model = whisper_ctc_model(vocabulary, head, shared)
    with torch.no_grad():
        model.network.encoder.layers[1].ffn_out.bias.add_(0.5)  # as if training moved it
    assert torch.equal(shared.layers[1].ffn_out.bias, tiny_encoder().layers[1].ffn_out.bias)
    assert not any(p.requires_grad for p in shared.parameters())
    assert model.network.encoder.layers[1].ffn_out.weight.requires_grad
    assert not model.network.encoder.layers[0].ffn_out.weight.requires_grad
    samples = torch.randn(1, 16000) * 0.1

    save_whisper_ctc_model(model, tmp_path)
    loaded = load_whisper_ctc_model(tmp_path, encoder=tiny_encoder())

    assert loaded.vocabulary == vocabulary
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.network(samples).logits, model.network.eval()(samples).logits
        )


def test_with_its_top_layer_training_a_cached_network_reruns_only_that_layer():
    from asr.whisper import cache_encoder_outputs, unfreeze_top_layers

    vocabulary = vocabulary_from_texts(["ab"], RULES)
    encoder = WhisperEncoder(replace(TINY, layers=3))
    head = replace(TINY_HEAD, encoder_layers=(1, 3))
    rng = np.random.default_rng(2)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 20000)]
    plain = unfreeze_top_layers(whisper_ctc_model(vocabulary, head, encoder), 1)
    cached = unfreeze_top_layers(whisper_ctc_model(vocabulary, head, encoder), 1)
    cache = {}
    cache_encoder_outputs(cached.network, cache)
    ran = []
    for number, layer in enumerate(cached.network.encoder.layers, start=1):
        layer.register_forward_hook(lambda *_, number=number: ran.append(number))

    for _ in range(2):
        expected, got = encoder_outputs(plain, clips), encoder_outputs(cached, clips)
        for one, other in zip(expected, got, strict=True):
            assert one.shape[1:] == (2, 32)  # layers 1 and 3, as the head reads them
            torch.testing.assert_close(one, other, atol=2e-3, rtol=2e-3)  # float16 in the cache
    assert ran == [1, 2, 3, 3]  # the frozen layers once, the one that trains at every call
    # the cache holds layer 1 (read by the head) and layer 2 (the trained layer's input)
    assert {hidden.shape[1:] for hidden in cache.values()} == {(2, 32)}

    batch = get_batch(cached, clips, [[1], [2]], [0, 1], torch.device("cpu"))
    cached.network(batch.input_values, batch.attention_mask).logits.sum().backward()
    layers = cached.network.encoder.layers
    assert layers[2].ffn_out.weight.grad is not None
    assert layers[0].ffn_out.weight.grad is None and layers[1].ffn_out.weight.grad is None


@pytest.mark.parametrize(
    ("layers", "trained"),
    [((3,), 0), ((3,), 1), ((3,), 3), ((1, 3), 1), ((2, 3), 1), ((1, 2, 3), 2), ((1, 2), 2)],
)
def test_encode_gives_the_layers_the_head_reads_whichever_train_cached_or_not(layers, trained):
    import copy

    from asr.whisper import cache_encoder_outputs, unfreeze_top_layers

    torch.manual_seed(3)
    encoder = WhisperEncoder(replace(TINY, layers=3))
    with torch.no_grad():
        encoder.positions.normal_(std=0.1)
    model = whisper_ctc_model(
        vocabulary_from_texts(["ab"], RULES), replace(TINY_HEAD, encoder_layers=layers), encoder
    )
    if trained:
        unfreeze_top_layers(model, trained)
    rng = np.random.default_rng(4)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 20000)]
    batch = get_batch(model, clips, [[1], [2]], [0, 1], torch.device("cpu"))
    network = model.network.eval()
    with torch.no_grad():  # the encoder's own forward, every layer run from the log-mel
        lengths = batch.attention_mask.sum(dim=1)
        log_mel, mel_lengths = network.log_mel(batch.input_values, lengths)
        expected, frames = network.encoder(log_mel, mel_lengths, output_layers=layers)
    expected = expected[:, :, 0] if len(layers) == 1 else expected
    cached = copy.deepcopy(model)
    cache_encoder_outputs(cached.network, {})

    for each in (model, cached, cached):  # the cached one twice: filled, then read
        with torch.no_grad():
            got, got_frames = each.network.encode(batch.input_values, batch.attention_mask)
        assert torch.equal(got_frames, frames) and got.shape == expected.shape
        got = got.float()  # an all-frozen cached network gives float16, which the head reads
        for row, count in enumerate(frames.tolist()):
            atol = 1e-5 if each is model else 5e-3  # the cache keeps float16
            torch.testing.assert_close(got[row, :count], expected[row, :count], atol=atol, rtol=0)


def test_a_copy_of_a_cached_network_reads_its_own_layers():
    import copy

    from asr.whisper import cache_encoder_outputs, unfreeze_top_layers

    model = whisper_ctc_model(
        vocabulary_from_texts(["ab"], RULES),
        replace(TINY_HEAD, encoder_layers=(2,)),
        tiny_encoder(),
    )
    cache_encoder_outputs(model.network, {})
    copied = unfreeze_top_layers(copy.deepcopy(model), 1)
    with torch.no_grad():
        copied.network.encoder.layers[1].ffn_out.bias.add_(torch.linspace(-1, 1, 32))  # trained
    samples = torch.from_numpy(np.random.default_rng(5).normal(0, 0.1, (1, 8000)).astype("f4"))
    uncached = copy.deepcopy(copied)
    del uncached.network.encode_frozen

    with torch.no_grad():
        torch.testing.assert_close(
            copied.network.encode(samples)[0],
            uncached.network.encode(samples)[0],
            atol=5e-3,
            rtol=0,
        )
        original = model.network.encode(samples)[0].float()  # its cache keeps float16
        assert not torch.allclose(original, copied.network.encode(samples)[0], atol=0.1)
    with pytest.raises(ValueError, match="the head reads no encoder layer from 2 up"):
        unfreeze_top_layers(
            whisper_ctc_model(
                vocabulary_from_texts(["ab"], RULES),
                replace(TINY_HEAD, encoder_layers=(1,)),
                tiny_encoder(),
            ),
            1,
        )


def test_transcribe_clips_runs_a_whisper_ctc_model():
    vocabulary = vocabulary_from_texts(["hello world"], RULES)
    model = whisper_ctc_model(vocabulary, TINY_HEAD, tiny_encoder())
    rng = np.random.default_rng(2)

    transcripts = transcribe_clips(
        model, [rng.normal(0, 0.1, n).astype(np.float32) for n in (800, 24000)]
    )

    assert len(transcripts) == 2
    assert transcripts[1].embedding.shape == (TINY_HEAD.width,)
    assert 0 <= transcripts[1].least_confidence <= 1


def test_the_ctc_head_on_whisper_learns_three_real_clips(real_speech, request):
    try:
        encoder = load_whisper_base_encoder()
    except WhisperWeightsMissing:
        encoder = tiny_encoder()  # still checks the head, the loss and the cached-feature path
    clips = [decode_audio(path) for path, _ in real_speech[:3]]
    texts = [normalize_text(text, RULES) for _, text in real_speech[:3]]
    vocabulary = vocabulary_from_texts(texts, RULES)
    layers = (2, 3, 4, 5, 6) if encoder.config.layers == 6 else (1, 2)
    head = WhisperCtcHeadConfig(encoder_layers=layers, dropout=0.0)
    model = whisper_ctc_model(vocabulary, head, encoder)
    assert all(not p.requires_grad for p in model.network.encoder.parameters())

    losses = head_trained(model, clips, texts, 40, 1e-3)  # the encoder is frozen: encode once

    assert losses[-1] < 0.5 * losses[0]


def test_a_mixed_head_reads_the_listed_layers_and_runs_no_layer_above_them():
    encoder = tiny_encoder()
    ran = []
    for number, layer in enumerate(encoder.layers, start=1):
        layer.register_forward_hook(lambda *_, number=number: ran.append(number))
    head = replace(TINY_HEAD, encoder_layers=(1,))
    model = whisper_ctc_model(vocabulary_from_texts(["ab"], RULES), head, encoder)
    samples = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)

    (first_layer,) = encoder_outputs(model, [samples])
    assert ran == [1] and first_layer.shape == (whisper_frame_count(8000), 32)

    ran.clear()
    mixed = whisper_ctc_model(
        vocabulary_from_texts(["ab"], RULES), replace(TINY_HEAD, encoder_layers=(1, 2)), encoder
    )
    (both,) = encoder_outputs(mixed, [samples])
    assert ran == [1, 2] and both.shape == (whisper_frame_count(8000), 2, 32)
    torch.testing.assert_close(both[:, 0], first_layer)
    logits = mixed.network(torch.from_numpy(samples)[None]).logits
    assert logits.shape == (1, whisper_frame_count(8000), 5)

    with pytest.raises(ValueError, match="encoder_layers must be in 1..1"):
        whisper_ctc_model(
            vocabulary_from_texts(["ab"], RULES), TINY_HEAD, WhisperEncoder(replace(TINY, layers=1))
        )


def test_a_model_saved_before_the_layer_mix_loads_as_a_top_layer_head(tmp_path: Path):
    vocabulary = vocabulary_from_texts(["ab"], RULES)
    model = whisper_ctc_model(vocabulary, replace(TINY_HEAD, encoder_layers=(2,)), tiny_encoder())
    save_whisper_ctc_model(model, tmp_path)
    description = json.loads((tmp_path / "whisper_ctc.json").read_text())
    del description["head"]["encoder_layers"]  # as the first sessions wrote it
    (tmp_path / "whisper_ctc.json").write_text(json.dumps(description))

    loaded = load_whisper_ctc_model(tmp_path, encoder=tiny_encoder())

    assert loaded.network.head_config.encoder_layers == (2,)  # the top layer of this encoder
    samples = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.network(samples).logits, model.network.eval()(samples).logits
        )
