import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from asr.cli import main
from asr.corpus import CorpusConfig, EspeakNotAvailable, generate_corpus
from asr.model import ClipTranscript
from asr.simulate import (
    SimulationCancelled,
    SimulationConfig,
    SimulationMismatch,
    learning_curves_svg,
    simulate,
    spread_order,
)
from asr.text import TextRules, vocabulary_from_texts
from asr.whisper import cache_encoder_outputs

SVG = "{http://www.w3.org/2000/svg}"
# 30 synthetic clips are about 1.8 minutes: 0.3 min of test, 0.2 of dev, two small rounds
TINY = SimulationConfig(
    base="builtin:tiny",
    strategies=("random", "entropy"),
    budgets_minutes=(0.3, 0.6),
    test_minutes=0.3,
    dev_minutes=0.2,
    # no LM and no retries of collapsed rounds (two steps of a tiny model always are): fast
    round_overrides={
        "max_steps": 2,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "lm_order": 0,
        "recovery_attempts": 0,
    },
)


def with_round(config: SimulationConfig, **changes) -> SimulationConfig:
    return replace(config, round_overrides=config.round_overrides | changes)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    try:
        summary = generate_corpus(
            CorpusConfig(seed=1, clip_count=30, clips_per_recording=0), directory, workers=1
        )
    except EspeakNotAvailable as error:
        pytest.skip(str(error))
    return summary.manifest


@pytest.fixture(scope="module")
def finished(manifest, tmp_path_factory) -> tuple[Path, list[dict]]:
    """One uninterrupted two-round simulation of two strategies."""
    output_dir = tmp_path_factory.mktemp("simulation")
    torch.set_num_threads(1)
    return output_dir, simulate(manifest, output_dir, TINY)


def labeled(output_dir: Path, strategy: str, round_number: int) -> list[int]:
    path = output_dir / "runs" / strategy / "seed0" / f"round{round_number}" / "labeled.json"
    return json.loads(path.read_text())


def test_it_writes_a_row_per_strategy_and_round_with_growing_minutes(finished):
    output_dir, rows = finished
    saved = json.loads((output_dir / "results.json").read_text())["rows"]
    assert saved == rows
    assert [(r["strategy"], r["round"]) for r in rows] == [
        ("random", 1),
        ("random", 2),
        ("entropy", 1),
        ("entropy", 2),
    ]
    for strategy in ("random", "entropy"):
        first, second = [row for row in rows if row["strategy"] == strategy]
        assert 0.3 <= first["labeled_minutes"] < second["labeled_minutes"]
        assert second["labeled_minutes"] >= 0.6
        assert second["labeled_clips"] > first["labeled_clips"]
    for row in rows:
        assert row["wer"] >= 0 and row["cer"] >= 0
        assert np.isfinite([row["wer"], row["cer"], row["train_seconds"]]).all()
        assert row["steps"] == 2 and row["seed"] == 0
        assert 0 <= row["train_seconds"] <= row["wall_seconds"]


def test_the_first_round_is_the_same_random_draw_for_every_strategy(finished):
    output_dir, _ = finished
    assert labeled(output_dir, "random", 1) == labeled(output_dir, "entropy", 1)


def test_the_first_round_is_trained_once_and_shared(finished):
    output_dir, rows = finished
    first = {row["strategy"]: row for row in rows if row["round"] == 1}
    assert "shared_from" not in first["random"]
    assert first["entropy"]["shared_from"] == "random"
    for key in ("wer", "cer", "wer_lm", "steps", "best_step", "labeled_clips"):
        assert first["entropy"][key] == first["random"][key], key
    # entropy's round 2 scored the pool with that model, read from its own run directory
    model = output_dir / "runs" / "entropy" / "seed0" / "round1" / "model"
    assert (model / "vocab.json").is_file()
    assert not (model.parent / "checkpoint.pt").exists()


def test_labels_grow_by_rounds_and_never_include_test_or_dev_clips(finished):
    output_dir, _ = finished
    split = json.loads((output_dir / "split.json").read_text())
    held_out = set(split["test"]) | set(split["dev"])
    assert split["test"] and split["dev"] and not set(split["test"]) & set(split["dev"])
    for strategy in ("random", "entropy"):
        first, second = labeled(output_dir, strategy, 1), labeled(output_dir, strategy, 2)
        assert second[: len(first)] == first  # round 2 adds to round 1's labels
        assert len(set(second)) == len(second)
        assert not set(second) & held_out


def six_one_second_clips(texts):
    """A corpus of six silent 1 s clips with these transcripts; clip 0 is held out."""
    import asr.simulate.loop

    return asr.simulate.loop._Corpus(
        clips=[np.zeros(16000, np.float32)] * 6,
        texts=texts,
        seconds=np.full(6, 1.0),
        pool=[1, 2, 3, 4, 5],
    )


def test_new_words_labels_the_clips_whose_drafts_hold_words_the_labels_lack(monkeypatch):
    import asr.simulate.loop

    texts = ["mama ni", "mama ni mama", "shule leo", "mama ni", "watoto nje", "ni mama"]
    drafts = list(texts)
    corpus = six_one_second_clips(texts)

    def drafts_of(model, clips, inference):
        assert len(clips) == 4  # the pool less what is labeled
        return [ClipTranscript(drafts[i], [], 0.0, 0.0, 0.0, np.zeros(2)) for i in [1, 2, 4, 5]]

    monkeypatch.setattr(asr.simulate.loop, "transcribe_clips", drafts_of)
    picked = asr.simulate.select_clips(
        "new-words", corpus, [0, 3], 2.0, 0, 2, model=object(), inference=None
    )
    assert sorted(picked) == [2, 4]


def test_oracle_words_picks_by_the_true_transcripts_without_the_model(monkeypatch):
    import asr.simulate.loop

    # clip 4's transcript holds two new words, clip 2's one; the model is never asked
    corpus = six_one_second_clips(
        ["mama ni", "mama ni", "shule ni", "mama ni", "watoto nje", "ni mama"]
    )

    def no_drafts(model, clips, inference):
        raise AssertionError("oracle-words needs no drafts")

    monkeypatch.setattr(asr.simulate.loop, "transcribe_clips", no_drafts)
    picked = asr.simulate.select_clips(
        "oracle-words", corpus, [0], 2.0, 0, 2, model=None, inference=None
    )
    assert picked == [4, 2]


def test_the_chart_is_svg_with_a_line_per_strategy_in_each_panel(finished):
    output_dir, rows = finished
    root = ET.parse(output_dir / "learning_curves.svg").getroot()
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 4  # 2 panels x 2 strategies
    assert all(len(line.get("points").split()) == 2 for line in lines)  # one point per round
    texts = {text.text for text in root.iter(f"{SVG}text")}
    assert {"random", "entropy", "test WER", "test CER"} <= texts
    assert not root.findall(f"{SVG}polygon")  # one seed: no min-max band


def test_rows_tested_with_the_lm_get_a_third_panel():
    rows = [
        {"strategy": "random", "seed": 0, "round": number, "labeled_minutes": minutes}
        | {"wer": 0.6, "cer": 0.2, "wer_lm": wer_lm}
        for number, minutes, wer_lm in ((1, 2.0, 0.5), (2, 5.0, 0.4))
    ]
    root = ET.fromstring(learning_curves_svg(rows))
    assert len(root.findall(f"{SVG}polyline")) == 3
    assert "test WER with the LM" in {text.text for text in root.iter(f"{SVG}text")}
    greedy_only = [row | {"wer_lm": None} for row in rows]
    assert len(ET.fromstring(learning_curves_svg(greedy_only)).findall(f"{SVG}polyline")) == 2


def test_several_seeds_draw_a_band():
    rows = [
        {"strategy": "random", "seed": seed, "round": number, "labeled_minutes": minutes}
        | {"wer": wer, "cer": wer / 3}
        for seed, shift in ((0, 0.0), (1, 0.1))
        for number, minutes, wer in ((1, 2.0, 0.9 + shift), (2, 5.0, 0.6 + shift))
    ]
    root = ET.fromstring(learning_curves_svg(rows))
    assert len(root.findall(f"{SVG}polygon")) == 2  # one band per panel


def test_a_rerun_after_an_interruption_skips_finished_rows_and_ends_the_same(
    manifest, finished, tmp_path
):
    calls = []

    def cancel_in_the_second_round() -> bool:  # asked before each round and after each step
        calls.append(True)
        return len(calls) > 4  # 1 + 2 steps for round 1, 1 before round 2, then its first step

    with pytest.raises(SimulationCancelled, match="random seed 0 round 2 at step 1"):
        simulate(manifest, tmp_path, TINY, should_cancel=cancel_in_the_second_round)
    first_session = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["strategy"], r["round"]) for r in first_session] == [("random", 1)]
    assert (tmp_path / "runs" / "random" / "seed0" / "round2" / "checkpoint.pt").is_file()

    rows = simulate(manifest, tmp_path, TINY)
    assert rows[0] == first_session[0]  # not run again: even its wall time is the same
    _, uninterrupted = finished
    for resumed, whole in zip(rows, uninterrupted, strict=True):
        assert resumed["labeled_clips"] == whole["labeled_clips"]
        assert resumed["cer"] == pytest.approx(whole["cer"], abs=1e-9)


def test_a_finished_simulation_is_not_run_again(manifest, finished):
    output_dir, rows = finished
    assert simulate(manifest, output_dir, TINY) == rows


def test_a_seed_added_to_a_finished_run_reuses_its_rows_and_draws_other_clips(
    manifest, finished, tmp_path
):
    output_dir, rows = finished
    shutil.copytree(output_dir, tmp_path, dirs_exist_ok=True)
    extended = simulate(manifest, tmp_path, replace(TINY, seeds=(0, 1)))
    assert extended[: len(rows)] == rows
    assert [(r["seed"], r["strategy"], r["round"]) for r in extended[len(rows) :]] == [
        (1, "random", 1),
        (1, "random", 2),
        (1, "entropy", 1),
        (1, "entropy", 2),
    ]
    seed_1 = tmp_path / "runs" / "random" / "seed1" / "round1" / "labeled.json"
    assert json.loads(seed_1.read_text()) != labeled(output_dir, "random", 1)
    root = ET.parse(tmp_path / "learning_curves.svg").getroot()
    assert len(root.findall(f"{SVG}polygon")) >= 2  # two seeds: min-max bands


def test_results_of_other_settings_are_refused(manifest, finished):
    output_dir, _ = finished
    with pytest.raises(
        SimulationMismatch, match="rounds .*'max_steps': 3.* here, .*'max_steps': 2"
    ):
        simulate(manifest, output_dir, with_round(TINY, max_steps=3))


def test_a_whole_number_setting_has_one_hash_however_it_was_typed():
    # the settings hash is of their JSON, where 25 and 25.0 differ: a run started with
    # `--steps-per-minute 25` could not be extended by one using the default (25)
    def settings_json(config: SimulationConfig) -> str:
        return json.dumps(config.result_settings(), sort_keys=True)

    whisper = replace(
        TINY,
        base="builtin:whisper-base",
        test_minutes=6,
        round_overrides={"steps_per_minute": 25, "learning_rate": 1},
    )
    typed = replace(
        whisper,
        round_overrides={"steps_per_minute": 25.0, "learning_rate": 1.0},
        test_minutes=6.0,
        budgets_minutes=(0.3, 0.6),
    )
    assert settings_json(whisper) == settings_json(typed)
    # and they compare equal to what results.json gives back (lists, not tuples)
    assert json.loads(settings_json(whisper)) == whisper.result_settings()


def test_an_impossible_budget_is_refused_before_any_training(manifest, tmp_path):
    with pytest.raises(ValueError, match="fewer than the largest budget"):
        simulate(manifest, tmp_path, replace(TINY, budgets_minutes=(0.5, 30.0)))
    assert not (tmp_path / "runs").exists()


def test_the_test_set_is_spread_over_the_manifest():
    order = spread_order(200, np.random.default_rng(0), parts=20)
    assert sorted(order) == list(range(200))
    assert sorted(index // 10 for index in order[:20]) == list(range(20))


def test_the_encoder_cache_gives_the_same_outputs_and_encodes_each_clip_once():
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperEncoder,
        WhisperEncoderConfig,
        whisper_ctc_model,
    )

    encoder_config = WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64)
    vocabulary = vocabulary_from_texts(["abc"], TextRules())
    head = WhisperCtcHeadConfig(
        encoder_layers=(1, 2), width=32, layers=1, heads=2, ffn_width=64, dropout=0.0
    )
    model = whisper_ctc_model(vocabulary, head, WhisperEncoder(encoder_config))
    network = model.network.eval()
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 12000, 5000)]
    batch = model.feature_extractor(
        clips, sampling_rate=16000, padding="longest", return_tensors="pt"
    )
    with torch.no_grad():
        expected = network(batch["input_values"], batch["attention_mask"]).logits

        encoded = []  # clips per encoder call
        network.encoder.register_forward_hook(lambda _, inputs, __: encoded.append(len(inputs[0])))
        cache_encoder_outputs(network, {})
        first = network(batch["input_values"], batch["attention_mask"]).logits
        again = network(batch["input_values"], batch["attention_mask"]).logits
        one = model.feature_extractor(clips[1:2], sampling_rate=16000, return_tensors="pt")
        alone = network(one["input_values"], one["attention_mask"]).logits

    assert encoded == [3]  # the second batch and the single clip came from the cache
    frames = network._get_feat_extract_output_lengths(torch.tensor([len(c) for c in clips]))
    for row, count in enumerate(frames.tolist()):  # padding frames differ and are never read
        # the cache keeps float16: equal to its precision
        assert torch.allclose(first[row, :count], expected[row, :count], atol=1e-2)
    assert torch.equal(again, first)
    assert alone.shape[1] == frames[1]
    assert torch.allclose(alone[0], expected[1, : frames[1]], atol=1e-2)


def test_heads_reading_other_encoder_layers_can_share_one_cache():
    from asr.whisper import (
        WhisperCtcHeadConfig,
        WhisperEncoder,
        WhisperEncoderConfig,
        whisper_ctc_model,
    )

    encoder = WhisperEncoder(WhisperEncoderConfig(width=32, layers=2, heads=2, ffn_width=64))
    vocabulary = vocabulary_from_texts(["abc"], TextRules())
    clips = [np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)]
    cache, expected = {}, []
    for layers in ((1, 2), (1,), (2,)):
        head = WhisperCtcHeadConfig(
            encoder_layers=layers, width=32, layers=1, heads=2, ffn_width=64, dropout=0.0
        )
        model = whisper_ctc_model(vocabulary, head, encoder)
        batch = model.feature_extractor(clips, sampling_rate=16000, return_tensors="pt")
        network = model.network.eval()
        with torch.no_grad():
            plain = network.encode(batch["input_values"], batch["attention_mask"])[0]
            cache_encoder_outputs(network, cache)
            cached = network.encode(batch["input_values"], batch["attention_mask"])[0]
        assert cached.shape == plain.shape, layers
        assert torch.allclose(cached.float(), plain, atol=1e-2), layers
        expected.append(plain)
    assert len(cache) == 3  # one entry per clip and head
    assert not torch.allclose(expected[1], expected[2], atol=1e-2)  # the layers differ


def test_whisper_base_encodes_each_clip_once_for_the_whole_simulation(
    manifest, tmp_path, monkeypatch
):
    import asr.whisper

    load_encoder = asr.whisper.load_whisper_base_encoder
    encoded = []  # clips per encoder call

    def counting_encoder():
        try:
            encoder = load_encoder()
        except asr.whisper.WhisperWeightsMissing as error:
            pytest.skip(f"Whisper-base weights not installed ({error})")
        encoder.register_forward_hook(lambda _, inputs, __: encoded.append(len(inputs[0])))
        return encoder

    monkeypatch.setattr(asr.whisper, "load_whisper_base_encoder", counting_encoder)
    config = replace(TINY, base="builtin:whisper-base", strategies=("entropy",))
    rows = simulate(manifest, tmp_path, config)
    assert [row["round"] for row in rows] == [1, 2]
    assert all(0 <= row["cer"] < 10 for row in rows)
    # training, dev and test evaluations and pool scoring over two rounds read clips about
    # 70 times; each of the 30 clips goes through the encoder at most once
    assert 0 < sum(encoded) <= 30
    model_files = {path.name for path in (tmp_path / "runs").glob("entropy/seed0/round2/model/*")}
    assert "whisper_ctc.json" in model_files


# --- the command line -------------------------------------------------------------------------

ARGS = [
    "--base=builtin:tiny",
    "--strategies=random,diverse",
    "--budgets=0.3,0.6",
    "--test-minutes=0.3",
    "--dev-minutes=0.2",
    "--steps=2",
    "--batch-size=4",
    "--lm-order=0",
    "--round-setting=recovery_attempts=0",
]


def test_the_simulate_command_writes_results_and_the_chart(manifest, tmp_path, capsys):
    assert main(["simulate", str(manifest), "--out", str(tmp_path), *ARGS]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert {(row["strategy"], row["round"]) for row in rows} == {
        ("random", 1),
        ("random", 2),
        ("diverse", 1),
        ("diverse", 2),
    }
    assert (tmp_path / "learning_curves.svg").is_file()
    assert "4 rows" in capsys.readouterr().out

    more = ["--strategies=random,diverse,margin"]  # the same run, one strategy more
    assert main(["simulate", str(manifest), "--out", str(tmp_path), *ARGS, *more]) == 0
    output = capsys.readouterr()
    assert "6 rows" in output.out
    first_bar_line = output.err.splitlines()[0]
    assert "4/6" in first_bar_line
    assert "ETA ?" in first_bar_line  # the 4 skipped rows took no time: no estimate from them


@pytest.mark.parametrize(
    "change, message",
    [
        (["--budgets=0.6,0.3"], "budgets must be positive and increasing"),
        (["--budgets=two,five"], "--budgets: 'two,five' is not a comma-separated list"),
        (["--strategies=random,bogus"], "strategies are some of"),
        (["--steps=0"], "max_steps, batch_size and learning_rate must be positive"),
        (["--base=/no/such/model"], "no such model directory"),
        (["--strategies=random,entropy,random"], "each strategy once"),
        (["--lm-order=1"], "order is 0 (none) or at least 2"),
        (["--round-setting=bogus=1"], "--round-setting: 'bogus' is not a round setting"),
        (["--round-setting=pseudo_weight=half"], "pseudo_weight='half' is not a"),
        (["--round-setting=self_train=maybe"], "self_train='maybe' is not a"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(manifest, tmp_path, capsys, change, message):
    assert main(["simulate", str(manifest), "--out", str(tmp_path), *ARGS, *change]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not (tmp_path / "results.json").exists()


def test_a_missing_manifest_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path), *ARGS]) == 2
    assert "no such manifest" in capsys.readouterr().err


def round_log(output_dir: Path, number: int, strategy: str = "random") -> str:
    return (output_dir / "runs" / strategy / "seed0" / f"round{number}" / "round.log").read_text()


def test_round_one_chooses_its_lm_among_the_labeled_transcripts_only(manifest, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    config = with_round(replace(TINY, strategies=("random",)), lm_order=2)

    rows = simulate(manifest, tmp_path, config)

    texts = [json.loads(line)["text"] for line in manifest.read_text().splitlines()]
    words = {w for i in labeled(tmp_path, "random", 1) for w in texts[i].split()}
    log = round_log(tmp_path, 1)
    assert f"language model from the training transcripts ({len(words)} words)" in log
    assert "pool drafts" not in log  # no model has drafted the pool before round 1
    assert all(row["cer_lm"] >= 0 and row["wer_lm"] >= 0 for row in rows)
    greedy_only = simulate(manifest, tmp_path / "greedy", with_round(config, lm_order=0))
    assert all(row["wer_lm"] is None for row in greedy_only)


def test_later_rounds_read_the_promoted_models_drafts_and_start_from_it(
    manifest, tmp_path, monkeypatch
):
    pytest.importorskip("flashlight.lib.text.decoder")
    import asr.simulate.loop

    drafted_by = []

    def fake_drafts(model, model_dir, corpus, labeled, inference, with_pool=False):
        drafted_by.append((model_dir, sorted(labeled)))
        return ["zebu quokka", "quokka"], []

    monkeypatch.setattr(asr.simulate.loop, "pool_drafts", fake_drafts)
    config = with_round(replace(TINY, strategies=("random",)), lm_order=2)

    rows = simulate(manifest, tmp_path, config)

    assert rows[0]["promoted"]  # nothing to beat in round 1
    first_model = tmp_path / rows[0]["model_dir"]
    assert drafted_by == [(first_model, sorted(labeled(tmp_path, "random", 2)))]
    log = round_log(tmp_path, 2)
    assert "language model from the training transcripts + pool drafts (2)" in log
    assert "attempt 1 (from the promoted model" in log  # the app's default


def test_with_fresh_heads_every_round_starts_from_a_new_head(manifest, tmp_path):
    simulate(manifest, tmp_path, replace(TINY, strategies=("random",), start_from_promoted=False))
    assert "attempt 1 (from a new head" in round_log(tmp_path, 2)


def test_pool_drafts_are_of_the_clips_not_labeled_in_pool_order(monkeypatch, tmp_path):
    import asr.simulate.loop

    clips = [np.full(1600, i, np.float32) for i in range(5)]
    corpus = asr.simulate.loop._Corpus(clips, ["a"] * 5, np.full(5, 0.1), pool=[4, 1, 2, 3])

    def drafts_of(model, clips, inference, decode=None):
        return [
            ClipTranscript("shown", [0.5], 0.0, 0.0, 0.0, np.zeros(2), greedy_text=f"c{int(c[0])}")
            for c in clips
        ]

    monkeypatch.setattr(asr.simulate.loop, "transcribe_clips", drafts_of)
    drafts, pool = asr.simulate.pool_drafts(None, tmp_path, corpus, [1, 3], None)
    assert (drafts, pool) == (["c4", "c2"], [])
    model = SimpleNamespace(vocabulary=None)  # no lm.arpa in tmp_path: greedy drafts shown
    _, pool = asr.simulate.pool_drafts(model, tmp_path, corpus, [1, 3], None, with_pool=True)
    assert [(int(d.samples[0]), d.text, d.confidence) for d in pool] == [
        (4, "shown", 0.5),
        (2, "shown", 0.5),
    ]


def test_jobs_split_the_strategies_over_processes_that_share_the_output(manifest, tmp_path, capsys):
    more = ["--strategies=random,entropy,diverse", "--jobs=2"]

    assert main(["simulate", str(manifest), "--out", str(tmp_path), *ARGS, *more]) == 0

    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert sorted((row["strategy"], row["round"]) for row in rows) == [
        ("diverse", 1), ("diverse", 2), ("entropy", 1), ("entropy", 2), ("random", 1), ("random", 2)
    ]  # fmt: skip
    logs = sorted(path.name for path in (tmp_path / "jobs").iterdir())
    assert logs == ["job0.log", "job1.log"]
    assert "4 rows" in (tmp_path / "jobs" / "job0.log").read_text()  # random and diverse
    assert "6 rows" in capsys.readouterr().out
    chart = ET.parse(tmp_path / "learning_curves.svg").getroot()
    assert len(chart.findall(f"{SVG}polyline")) == 6  # every process's rows: 2 panels x 3


def test_a_failing_job_stops_the_command_and_names_its_exit_status(manifest, tmp_path, capsys):
    # results of other settings in --out: each child refuses them and exits with status 2
    (tmp_path / "results.json").write_text(
        json.dumps({"config_hash": "0" * 16, "config": {"steps": 99}, "rows": []})
    )
    more = ["--strategies=random,entropy", "--jobs=2"]

    assert main(["simulate", str(manifest), "--out", str(tmp_path), *ARGS, *more]) == 2

    error = capsys.readouterr().err
    assert "job 0 failed with exit status 2" in error
    assert "other settings" in error
    assert not (tmp_path / "runs").exists()  # nothing was trained
