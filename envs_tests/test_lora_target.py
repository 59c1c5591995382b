"""LoRATarget: a real LoRA fine-tune of the tiny GPT-2 student changes its validation metrics,
trains only adapter weights, is deterministic per seed, and rejects bad input clearly."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("peft", reason="LoRATarget needs peft (pip install peft)")

import datagen_gym  # noqa: E402,F401
from datagen_gym.envs.lm_env import make_lm_env  # noqa: E402
from datagen_gym.targets.lora_target import (  # noqa: E402
    GENERATIVE_TASKS,
    LoRATarget,
    format_prompt,
    make_generative_validation_set,
    make_tiny_student,
)
from datagen_gym.world.tasks import FAMILY_BY_NAME  # noqa: E402

N_VAL = 20


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_tiny_student(tmp_path_factory.mktemp("models") / "student", init="teacher")


@pytest.fixture(scope="module")
def data():
    val = make_generative_validation_set("uppercase", N_VAL)
    train = make_generative_validation_set("uppercase", 32, seed=1)
    # Garbage: the right instructions and inputs with another task's answers.
    wrong = make_generative_validation_set("reverse", 32, seed=2)
    garbage = [dict(r, output=w["output"]) for r, w in zip(train, wrong)]
    return val, train, garbage


@pytest.fixture(scope="module")
def target(student, data):
    return LoRATarget(student, data[0])


def _stable(metrics):
    return {k: v for k, v in metrics.items() if k != "time_s"}


def test_generative_validation_set():
    assert set(GENERATIVE_TASKS) == {
        "reverse",
        "uppercase",
        "count_words",
        "addition",
        "sort_numbers",
        "max_number",
    }
    for task in ("uppercase", "reverse", "addition"):
        rows = make_generative_validation_set(task, 10, seed=3)
        assert len(rows) == 10 and rows == make_generative_validation_set(task, 10, seed=3)
        fam = FAMILY_BY_NAME[task]
        for r in rows:
            assert set(r) == {"instruction", "input", "output", "skill"} and r["skill"] == task
            assert r["instruction"] in fam.all_instructions and fam.solve(r["input"]) == r["output"]
    with pytest.raises(ValueError, match="unknown built-in task 'sentiment'.*uppercase"):
        make_generative_validation_set("sentiment", 5)
    assert (
        format_prompt({"instruction": "Do it.", "input": "x", "output": "y"})
        == "### Instruction:\nDo it.\n\n### Input:\nx\n\n### Response:\n"
    )


def test_fine_tuning_changes_the_metrics(target, data):
    _, train, garbage = data
    untrained = target.evaluate_base()
    good = target(train)
    bad = target(garbage)
    assert set(good) >= {"exact_match", "accuracy", "val_loss", "token_accuracy", "num_train"}
    assert good["accuracy"] == good["exact_match"] and good["num_train"] == 32
    # Correct records teach the format and the task: the gold answers get much likelier.
    assert good["val_loss"] < untrained["val_loss"] - 0.3, (good, untrained)
    assert good["token_accuracy"] > untrained["token_accuracy"]
    # Wrong answers teach the wrong thing.
    assert bad["val_loss"] > good["val_loss"] + 0.3, (good, bad)
    assert _stable(good) != _stable(bad)


def test_only_lora_weights_train_and_the_base_is_untouched(target, data):
    before = {k: v.clone() for k, v in target.model.state_dict().items()}
    target(data[1][:8])
    names = target.last_trainable_names
    assert names and all("lora_" in n for n in names), names
    assert all(".c_attn." in n for n in names)  # GPT-2 default: the attention projection
    after = target.model.state_dict()
    assert after.keys() == before.keys()  # the adapter was removed again
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in n for n, _ in target.model.named_modules())
    assert not any(p.requires_grad for p in target.model.parameters())


def test_deterministic_for_a_seed(student, target, data):
    train = data[1][:16]
    first = _stable(target(train))
    assert _stable(target(train)) == first  # independent of the calls before
    assert _stable(LoRATarget(student, data[0])(train)) == first  # and of the instance
    other = _stable(LoRATarget(student, data[0], seed=1)(train))
    assert other["val_loss"] != first["val_loss"]


def test_bad_records_are_clear_errors(student, target, data):
    with pytest.raises(ValueError, match="data is empty"):
        target([])
    with pytest.raises(ValueError, match=r"data\[1\] needs a string 'output'"):
        target([data[1][0], {"instruction": "x", "input": ""}])
    with pytest.raises(TypeError, match="list of records"):
        target({"instruction": "x", "output": "y"})
    with pytest.raises(ValueError, match="validation_dataset is empty"):
        LoRATarget(student, [])
    with pytest.raises(FileNotFoundError, match="make_tiny_student"):
        LoRATarget(student.parent, data[0])


def test_pickles_without_the_weights(target, data):
    assert target.model is not None  # loaded
    blob = pickle.dumps(target)
    assert len(blob) < 100_000  # the model is left out and reloads from its path
    clone = pickle.loads(blob)
    train = data[1][:8]
    assert _stable(clone(train)) == _stable(target(train))


def test_default_student_is_cached_per_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_GYM_CACHE", str(tmp_path))
    path = make_tiny_student()
    assert path.parent == tmp_path and path.name.startswith("tiny_student-teacher-")
    assert (path / "config.json").is_file() and make_tiny_student() == path  # reused
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary dirs left


def test_random_student(tmp_path, data):
    path = make_tiny_student(tmp_path / "rand", init="random", seed=0)
    t = LoRATarget(path, data[0][:4])
    assert sum(p.numel() for p in t.model.parameters()) < 2_000_000
    assert t(data[1][:4])["num_train"] == 4


def test_lm_env(student):
    from gymnasium.envs.registration import register, registry

    if "DataGen-LM-v0" not in registry:  # registered by datagen_gym once the patch is in
        register(id="DataGen-LM-v0", entry_point="datagen_gym.envs.lm_env:make_lm_env")
    env = gym.make(
        "DataGen-LM-v0",
        task="uppercase",
        student_path=student,
        n_validation=10,
        batch_size=8,
        num_iterations=1,
    )
    assert env.unwrapped.reward_metric == "token_accuracy"
    obs, info = env.reset(seed=0)
    assert info["metric"] == info["baseline_metric"]
    obs, reward, terminated, truncated, info = env.step([1, 1, 0])  # keep, self_instruct
    assert truncated and env.observation_space.contains(obs)
    assert not info["all_filtered"] and info["num_records"] > 0  # the student did train
    assert {"exact_match", "val_loss", "token_accuracy"} <= set(info["metrics"])
    assert reward == pytest.approx(info["metrics"]["token_accuracy"] - info["baseline_metric"])
    env2 = make_lm_env(
        "count_words",
        student_path=student,
        n_validation=5,
        batch_size=4,
        num_iterations=1,
        reward_metric="token_accuracy",
    )
    assert env2.reward_metric == "token_accuracy"


def test_skills_and_test_split(student):
    from datagen_gym.targets.lora_target import make_generative_test_set

    task = "uppercase+count_words"
    val, test = make_generative_validation_set(task, 4), make_generative_test_set(task, 4)
    assert not {r["input"] for r in val} & {r["input"] for r in test}
    target = LoRATarget(student, val, test_dataset=test, max_new_tokens=8)
    m = target(make_generative_validation_set(task, 6, seed=5))
    for prefix in ("", "test/"):
        per_skill = [m[f"{prefix}skill/uppercase"], m[f"{prefix}skill/count_words"]]
        assert all(0.0 <= v <= 1.0 for v in per_skill)
        # skill/<name> reports token accuracy; the headline is the mean over skills
        assert m[f"{prefix}token_accuracy"] == pytest.approx(np.mean(per_skill))
    assert m["test/val_loss"] != m["val_loss"]  # scored on other records
