"""Recipes: the file's validation, the phases laid out on steps and samples, and the sample order they give.

The order's contract: the sample at global index i is a pure function of (recipe, seed, i); a phase draws only
its languages, at its alpha, mask rate and block size; a language's blocks continue their epochs across phases
of one block size; without a recipe the order is the one-phase order of runs before recipes.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from xlmr_ds.dataset.blending import GlobalSampleOrder
from xlmr_ds.dataset.loader import DataConfig, PretrainingData, TrainLoader, build_train_loader
from xlmr_ds.dataset.phases import PhaseDefaults, PhasePlan
from xlmr_ds.dataset.recipe import Recipe, load_recipe
from xlmr_ds.dataset.sampling import alpha_probabilities
from xlmr_ds.dataset.sampling_report import sampling_report
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.vocab import IGNORE_INDEX

THREE_PHASES = {"phases": [
    {"name": "base", "steps": 4, "alpha": 0.7, "languages": ["en", "ru", "el"], "mask_prob": 0.3, "block_size": 32,
     "batch_size": {"start": 4, "end": 8, "multiple": 4}, "lr": {"shape": "warmup", "end": 0.001}},
    {"name": "mid", "steps": 5, "alpha": {"start": 0.5, "end": 0.3}, "languages": ["hi", "en", "ru", "el", "ar"],
     "mask_prob": 0.15, "lr": {"shape": "stable"}},
    {"name": "decay", "tokens": 2000, "languages": ["zh", "en", "ru", "el", "ar", "hi"], "mask_prob": 0.05,
     "block_size": 64, "lr": {"shape": "1-sqrt"}},
]}


def write(tmp_path, recipe, name="recipe.json"):
    path = tmp_path / name
    path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    return path


def one_phase(**keys):
    return {"phases": [{"steps": 10, **keys}]}


# ---- validation --------------------------------------------------------------------------------------------
BAD_RECIPES = [
    ("not JSON", "{", "invalid JSON at line 1"),
    ("a list", "[]", "a recipe must be a JSON object"),
    ("unknown top key", {"phase": []}, "unknown key 'phase'; did you mean 'phases'?"),
    ("no phases", {"phases": []}, "phases must be a non-empty list"),
    ("phase not an object", {"phases": [3]}, "phases[0] must be a JSON object"),
    ("unknown phase key", one_phase(alhpa=0.3), "unknown key 'phases[0].alhpa'; did you mean 'alpha'?"),
    ("no length", {"phases": [{"alpha": 0.3}]}, "phases[0]: give exactly one of steps and tokens (got neither)"),
    ("two lengths", {"phases": [{"steps": 3, "tokens": 9}]}, "give exactly one of steps and tokens (got steps and"),
    ("zero steps", {"phases": [{"steps": 0}]}, "phases[0].steps=0 must be at least 1 (a phase is at least one step)"),
    ("steps a string", {"phases": [{"steps": "10"}]}, "phases[0].steps must be an integer (got '10')"),
    ("alpha above 1", one_phase(alpha=1.5), "phases[0].alpha=1.5 must be in (0, 1]"),
    ("alpha zero", one_phase(alpha=0), "phases[0].alpha=0 must be in (0, 1]"),
    ("alpha ramp key", one_phase(alpha={"start": 0.7, "stop": 0.3}), "unknown key 'phases[0].alpha.stop'"),
    ("alpha ramp end missing", one_phase(alpha={"start": 0.7}), "phases[0].alpha.end is missing"),
    ("alpha a bool", one_phase(alpha=True), "phases[0].alpha must be a number (got True)"),
    ("empty languages", one_phase(languages=[]), "phases[0].languages must be a non-empty list"),
    ("language not a string", one_phase(languages=["en", 7]), "phases[0].languages: 7 is not a language name"),
    ("language twice", one_phase(languages=["en", "en"]), "phases[0].languages: 'en' is listed twice"),
    ("mask rate 1", one_phase(mask_prob=1.0), "phases[0].mask_prob=1.0 must be in (0, 1)"),
    ("block too small", one_phase(block_size=4), "phases[0].block_size=4 must be at least 8"),
    ("batch zero", one_phase(batch_size=0), "phases[0].batch_size=0 must be at least 1"),
    ("batch ramp off its multiple", one_phase(batch_size={"start": 8, "end": 20, "multiple": 8}),
     "phases[0].batch_size.end=20 is not a multiple of phases[0].batch_size.multiple=8"),
    ("lr a number", one_phase(lr=0.001), "phases[0].lr must be an object such as"),
    ("lr shape", one_phase(lr={"shape": "cosine"}), "phases[0].lr.shape='cosine' must be one of warmup, stable"),
    ("lr negative", one_phase(lr={"shape": "linear", "end": -1}), "phases[0].lr.end=-1 must be in [0, inf]"),
    ("stable with an end", one_phase(lr={"shape": "stable", "end": 0.1}), "a stable piece stays at its start"),
    ("lr on some phases", {"phases": [{"steps": 2, "lr": {"shape": "warmup"}}, {"steps": 2}]},
     "phases[1] has no lr piece while phases[0] has one"),
]


@pytest.mark.parametrize("recipe, expected", [case[1:] for case in BAD_RECIPES], ids=[c[0] for c in BAD_RECIPES])
def test_a_bad_recipe_is_one_line_naming_the_file_and_key(tmp_path, recipe, expected):
    path = write(tmp_path, recipe)
    with pytest.raises(XLMRDSError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


@pytest.mark.parametrize("phase, expected", [
    ({"steps": 2, "languages": ["en", "xx"]}, "phases[0].languages: 'xx' is not a language of the dataset"),
    ({"steps": 2, "block_size": 1024}, "phases[0].block_size=1024 is longer than the model's max_sequence_length 512"),
], ids=["unknown language", "block longer than the model"])
def test_a_recipe_is_checked_against_the_data_and_the_model(tmp_path, binarized_dir, phase, expected):
    recipe = load_recipe(write(tmp_path, {"phases": [phase]}))
    with pytest.raises(XLMRDSError, match=re.escape(expected)):
        PretrainingData(DataConfig(str(binarized_dir), block_size=64), recipe, max_sequence_length=512)


# ---- the layout on steps and samples ----------------------------------------------------------------------
DEFAULTS = PhaseDefaults(alpha=0.3, mask_prob=0.15, block_size=64, batch_size=8,
                         languages=("ar", "el", "en", "hi", "ru", "zh"), peak_lr=0.001)


@pytest.fixture
def plan(tmp_path):
    return PhasePlan(load_recipe(write(tmp_path, THREE_PHASES)), DEFAULTS)


def test_phases_are_laid_out_on_steps_and_samples(plan):
    base, mid, decay = plan.phases
    assert [base.batch_size(s) for s in range(4)] == [4, 4, 4, 8]   # 4 + 4 * s // 3, down to a multiple of 4
    assert (base.first_step, base.samples) == (0, 20)
    assert (mid.first_step, mid.first_sample, mid.samples, mid.batch.start) == (4, 20, 40, 8)  # carried over
    assert decay.steps == math.ceil(2000 / (8 * 64))                                          # tokens -> steps
    assert plan.total_steps == 4 + 5 + 4
    assert mid.languages == ("ar", "el", "en", "hi", "ru")  # the dataset's order, not the list's
    assert (mid.mask_prob, decay.alpha.start, decay.alpha.end) == (0.15, 0.3, 0.3)
    for step in range(plan.total_steps + 3):
        assert plan.step_at(plan.samples_before(step)) == step
        assert plan.samples_before(step + 1) - plan.samples_before(step) == plan.batch_size(step)
    with pytest.raises(XLMRDSError, match="is not at the start of a step"):
        plan.step_at(6)


def test_learning_rate_pieces_join_where_the_last_one_ended(plan):
    rates = [plan.learning_rate(step) for step in range(plan.total_steps)]
    assert rates[:4] == pytest.approx([0.00025, 0.0005, 0.00075, 0.001])  # warmup from 0 to the optimizer's lr
    assert rates[4:9] == pytest.approx([0.001] * 5)                        # stable at the warmup's end
    assert rates[9:] == pytest.approx([0.001 * (1 - math.sqrt(t / 4)) for t in range(4)])   # 1-sqrt to 0


# ---- the sample order ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phased(binarized_dir, tmp_path_factory):
    recipe = load_recipe(write(tmp_path_factory.mktemp("recipe"), THREE_PHASES))
    return PretrainingData(DataConfig(str(binarized_dir), block_size=64, seed=3), recipe, batch_size=8)


def test_without_a_recipe_the_order_is_the_one_phase_order(binarized_dir, tmp_path):
    config = DataConfig(str(binarized_dir), block_size=64, seed=3)
    plain = PretrainingData(config)
    tokens = {lang: plain.manifest["languages"][lang]["tokens"] for lang in plain.languages}
    q = alpha_probabilities(tokens, 0.3)
    before_recipes = GlobalSampleOrder([q[lang] for lang in plain.languages],
                                       [len(plain.blocks[lang][0]) for lang in plain.languages], seed=3)
    restated = PretrainingData(config, load_recipe(write(tmp_path, one_phase(alpha=0.3, mask_prob=0.15,
                                                                            block_size=64))))
    for index in range(0, 3000, 7):
        assert plain.order[index] == before_recipes[index]
        a, b = plain.train_sample(index), restated.train_sample(index)
        assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])


def test_each_phase_draws_only_its_languages_at_its_block_size_and_mask_rate(phased):
    for phase in phased.plan.phases:
        samples = [phased.train_sample(i) for i in range(phase.first_sample, phase.first_sample + phase.samples)]
        assert {phased.languages[s["language"]] for s in samples} <= set(phase.languages)
        assert max(len(s["input_ids"]) for s in samples) <= phase.block_size
        assert max(len(s["input_ids"]) for s in samples) > phase.block_size // 2
        labelled = sum(int((s["labels"] != IGNORE_INDEX).sum()) for s in samples)
        assert labelled / sum(len(s["input_ids"]) - 2 for s in samples) == pytest.approx(phase.mask_prob, rel=0.35)


def test_a_sample_is_a_pure_function_of_recipe_seed_and_index(phased, binarized_dir, tmp_path):
    fresh = PretrainingData(phased.config, load_recipe(write(tmp_path, THREE_PHASES)), batch_size=8)
    last = phased.plan.phases[-1]
    indices = [last.first_sample + last.samples + 5, 0, 37, 19, 20, 63, 61]  # out of order, across boundaries
    for index in indices:
        a, b = fresh.train_sample(index), phased.train_sample(index)
        assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])


def test_a_language_continues_its_epoch_across_phases_of_one_block_size(binarized_dir, tmp_path):
    # Two phases of zh only: its blocks are drawn once each before any repeats, across the boundary.
    recipe = {"phases": [{"steps": 3, "languages": ["zh"]}, {"steps": 5, "languages": ["zh", "en"], "alpha": 0.01}]}
    data = PretrainingData(DataConfig(str(binarized_dir), block_size=64), load_recipe(write(tmp_path, recipe)),
                           batch_size=2)
    zh = data.languages.index("zh")
    blocks = [data.order[i][1] for i in range(6)]
    second = data.phase_orders[1]
    blocks += [block for language, block in (second[i] for i in range(10)) if language == zh]
    count = len(data.blocks["zh"][0])
    first_epoch = blocks[:count]
    assert len(set(first_epoch)) == len(first_epoch)


def test_sampling_report_counts_what_the_loader_draws(phased):
    report = sampling_report(phased)
    for phase, entry in zip(phased.plan.phases, report["phases"]):
        samples = [phased.train_sample(i, masked=False)
                   for i in range(phase.first_sample, phase.first_sample + phase.samples)]
        for language, figures in entry["languages"].items():
            mine = [s for s in samples if phased.languages[s["language"]] == language]
            assert figures["samples"] == len(mine)
            assert figures["tokens"] == sum(len(s["input_ids"]) for s in mine)
            assert figures["share"] == pytest.approx(len(mine) / phase.samples)
        assert sum(f["samples"] for f in entry["languages"].values()) == phase.samples


@pytest.mark.parametrize("world_size, micro", [(1, 4), (2, 2), (4, 1)])
def test_ranks_together_take_each_step_of_a_changing_batch(phased, world_size, micro):
    plan = phased.plan
    iterators = [iter(build_train_loader(phased, plan, micro, rank, world_size)) for rank in range(world_size)]
    for step in range(plan.total_steps):
        accumulation = plan.batch_size(step) // (micro * world_size)
        taken = [int(i) for it in iterators for _ in range(accumulation) for i in next(it)["sample_index"]]
        first = plan.samples_before(step)
        assert taken == list(range(first, first + plan.batch_size(step)))


def test_a_resumed_loader_continues_at_the_step_its_samples_reach(phased):
    unbroken = TrainLoader(phased, phased.plan, 2, rank=0, world_size=2)
    for _ in range(6):
        unbroken.step_done()
    resumed = TrainLoader(phased, phased.plan, 1, rank=1, world_size=4)
    resumed.load_state_dict(unbroken.state_dict())
    batch = next(iter(resumed))
    share = phased.plan.batch_size(6) // 4
    assert batch["sample_index"][0] == phased.plan.samples_before(6) + share


def test_a_batch_that_does_not_split_over_the_processes_is_refused(phased):
    with pytest.raises(XLMRDSError, match=r"phases\[0\].batch_size.start=4 is not a multiple of micro batch 2 x 4"):
        TrainLoader(phased, phased.plan, 2, rank=0, world_size=4)


def test_recipe_single_phase_is_xlmr():
    assert Recipe.single_phase(7).phases[0].steps == 7


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "recipes").glob("*.json")), ids=lambda p: p.name)
def test_shipped_recipes_load_and_name_demo_corpus_languages(path):
    from xlmr_ds.prep.demo.corpus import FAKER_LANGUAGES, MIMESIS_LANGUAGES

    recipe = load_recipe(path)
    recipe.check_against(sorted({*MIMESIS_LANGUAGES, *FAKER_LANGUAGES}), max_sequence_length=512)
    plan = PhasePlan(recipe, PhaseDefaults(0.3, 0.15, 128, 32, tuple(sorted({*MIMESIS_LANGUAGES, *FAKER_LANGUAGES})),
                                           peak_lr=0.002))
    assert plan.total_steps == sum(phase.steps for phase in recipe.phases)


def test_sampling_report_counts_whole_epochs_of_a_repeating_language(binarized_dir, tmp_path):
    config = DataConfig(str(binarized_dir), block_size=64)
    blocks = len(PretrainingData(config).blocks["zh"][0])
    recipe = {"phases": [{"steps": blocks * 5 // 2, "languages": ["zh"]}]}  # 2.5 epochs, batch 1
    data = PretrainingData(config, load_recipe(write(tmp_path, recipe)), batch_size=1)
    figures = sampling_report(data)["phases"][0]["languages"]["zh"]
    assert figures["epochs"] == pytest.approx(2.5, abs=1 / blocks)
    assert figures["tokens"] == sum(len(data.train_sample(i, masked=False)["input_ids"]) for i in range(blocks * 5 // 2))
