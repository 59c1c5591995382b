"""Skills, the focus action, the test split and start settings through reset(options)."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from support.sizes import SMALL

import datagen_gym  # noqa: F401  (registers the envs)
from datagen_gym.envs import DataGenEnv, TargetModelError
from datagen_gym.generators.generator import Generator
from datagen_gym.targets import make_builtin_target, make_test_set, make_validation_set, task_skills
from datagen_gym.targets.builtin_tasks import split_of
from datagen_gym.world.seed_tasks import make_seed_tasks
from datagen_gym.world.tasks import CLASSIFICATION_TASKS, identify


def _skills_env(**kw):
    return gym.make("DataGen-Skills-v0", **{**SMALL, **kw})


# ---------------------------------------------------------------- targets
@pytest.mark.parametrize("task", list(CLASSIFICATION_TASKS) + ["classification", "topic+spam"])
def test_builtin_targets_report_skills_and_test_split(task):
    target, validation = make_builtin_target(task, n_validation=20, n_test=20)
    result = target(make_seed_tasks())
    skills = task_skills(task)
    for prefix in ("", "test/"):
        for s in skills:
            assert 0.0 <= result[f"{prefix}skill/{s}"] <= 1.0
        # the headline is the mean over skills, so every skill weighs the same
        assert result[f"{prefix}accuracy"] == pytest.approx(
            np.mean([result[f"{prefix}skill/{s}"] for s in skills])
        )
    assert {r["skill"] for r in validation} == set(skills)


def test_per_skill_accuracy_is_computed_on_that_skill_only():
    target, validation = make_builtin_target("topic+parity", n_validation=30, n_test=30)
    # train on the gold topic records only: topic is learnable, parity is not
    result = target(
        [r for r in validation if r["skill"] == "topic"] * 2
        + [r for r in make_seed_tasks() if r["skill"] == "parity"]
    )
    assert result["skill/topic"] == pytest.approx(1.0)
    assert result["skill/parity"] < 0.9


def test_cached_ngrams_change_no_metric():
    """The target caches each text's n-grams across calls; its metrics must equal a plain
    TF-IDF + logistic-regression fit on every call, whatever came before."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    from datagen_gym.targets.sklearn_target import OTHER, _label, record_text

    target, validation = make_builtin_target("sentiment+topic+parity", n_validation=40, n_test=0)
    pool = make_validation_set("classification", 30, seed=7) + make_seed_tasks()
    rng = np.random.default_rng(0)
    for n in (40, 120, 40):  # the second 40 re-reads texts the cache already holds
        data = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=20000)
        clf = LogisticRegression(C=10.0, max_iter=300)
        clf.fit(
            vec.fit_transform([record_text(r) for r in data]),
            [_label(r, target.label_set) for r in data],
        )
        pred = clf.predict(vec.transform([record_text(r) for r in validation]))
        pred = np.where(pred == OTHER, "", pred)
        gold = [r["output"] for r in validation]
        skill = np.array([r["skill"] for r in validation])
        expected = np.mean(
            [accuracy_score(np.array(gold)[skill == s], pred[skill == s]) for s in target.skills]
        )
        assert target(data)["accuracy"] == expected


@pytest.mark.parametrize("task", CLASSIFICATION_TASKS)
def test_validation_and_test_splits_are_disjoint(task):
    def norm(x):
        words = x.lower().split()
        return " ".join(words[1:] if words[:1] == ["the"] else words)

    val = make_validation_set(task, 200)
    test = make_test_set(task, 200)
    assert len(test) == 200
    assert not {norm(r["input"]) for r in val} & {norm(r["input"]) for r in test}
    assert {split_of(r["input"]) for r in val} == {"validation"}
    assert {split_of(r["input"]) for r in test} == {"test"}


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="unknown built-in task 'poetry'.*sentiment"):
        task_skills("sentiment+poetry")
    with pytest.raises(ValueError, match="twice"):
        task_skills("spam+spam")


# ---------------------------------------------------------------- focus in the generators
def test_focus_puts_only_that_skills_tasks_in_context():
    gen = Generator(seed=0)
    gen.select_template("self_instruct")
    gen.set_focus("topic")
    topic = {t["instruction"] for t in gen.pool.human if t["skill"] == "topic"}
    for prompt in gen.self_instruct.bootstrap_prompts(5):
        listed = [
            line.split(". ", 1)[1]
            for line in prompt.splitlines()[1:]
            if ". " in line and line.split(". ", 1)[1]
        ]
        assert listed and set(listed) <= topic
    gen.set_focus(None)
    anywhere = {
        line.split(". ", 1)[1]
        for p in gen.self_instruct.bootstrap_prompts(20)
        for line in p.splitlines()[1:]
        if ". " in line and line.split(". ", 1)[1]
    }
    assert len({identify(i)[0].name for i in anywhere}) > 3


def test_focus_tags_records_and_unknown_focus_is_refused():
    gen = Generator(seed=1)
    gen.select_template("evol_deepen")
    gen.set_focus("uppercase")
    batch = gen.generate(8)
    assert batch.data and {r["skill"] for r in batch.data} == {"uppercase"}
    with pytest.raises(ValueError, match="unknown focus skill 'poetry'"):
        gen.set_focus("poetry")


# ---------------------------------------------------------------- the env
def test_default_env_keeps_the_seed_spaces():
    env = gym.make("DataGen-v0", **SMALL)
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, 10])
    assert env.observation_space.shape == (21,)
    assert env.unwrapped.action_dim_names == ("temperature", "top_p", "template")


def test_skills_env_spaces_and_observation_layout():
    env = _skills_env()
    base = env.unwrapped
    k = len(CLASSIFICATION_TASKS)
    assert base.skills == CLASSIFICATION_TASKS
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, 10, 1 + k])
    assert env.observation_space.shape == (21 + (1 + k) + k + (k + 1),)
    obs, info = env.reset(seed=0)
    focus = obs[21 : 22 + k]
    assert focus.tolist() == [1.0] + [0.0] * k
    skill_obs = obs[22 + k : 22 + 2 * k]
    assert skill_obs == pytest.approx([info["skill_metrics"][s] for s in base.skills])
    obs, _, _, _, info = env.step(np.array([1, 1, 0, 2]))  # focus on skills[1]
    assert info["focus"] == base.skills[1]
    assert obs[21 : 22 + k].tolist() == [0.0, 0.0, 1.0] + [0.0] * (k - 2)
    counts = info["skill_counts"]
    assert counts[base.skills[1]] == info["dataset_size"] > 0
    assert obs[22 + 2 * k + 1] == pytest.approx(counts[base.skills[1]] / (8 * 3))


@pytest.mark.parametrize("mode", ["discrete", "continuous"])
def test_env_checkers_pass_with_focus(mode):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = DataGenEnv(task="classification", focus=True, action_mode=mode, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert not [w for w in caught if "space" in str(w.message).lower()]
    sb3_check_env(DataGenEnv(task="classification", focus=True, action_mode=mode, **SMALL))


def test_test_metric_is_reported_but_never_observed():
    validation = make_validation_set("sentiment", 30)

    def make_target(test_value):
        inner, _ = make_builtin_target("sentiment", n_validation=30, n_test=30)

        def target(data):
            out = inner(data)
            return {**out, "test/accuracy": test_value, "test/skill/sentiment": test_value}

        return target

    runs = []
    for test_value in (0.0, 1.0):
        env = DataGenEnv(
            target_model=make_target(test_value),
            validation_dataset=validation,
            focus=True,
            skills=["sentiment"],
            **SMALL,
        )
        obs, info = env.reset(seed=3)
        observations, infos = [obs], [info]
        for _ in range(2):
            obs, _, _, _, info = env.step(np.array([1, 1, 1, 1]))
            observations.append(obs)
            infos.append(info)
        runs.append((observations, infos))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert [i["test_metric"] for i in runs[0][1]] == [0.0] * 3
    assert [i["test_metric"] for i in runs[1][1]] == [1.0] * 3
    assert runs[1][1][-1]["test_skill_metrics"] == {"sentiment": 1.0}
    assert "test/accuracy" not in runs[1][1][-1]["metrics"]


def test_builtin_env_reports_test_metric_from_its_own_split():
    env = gym.make("DataGen-v0", **SMALL)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert 0.0 <= info["test_metric"] <= 1.0 and not math.isnan(info["test_metric"])
    assert set(info["test_skill_metrics"]) == {"sentiment"}


def test_skills_from_a_users_validation_data():
    validation = [dict(r) for r in make_validation_set("topic+spam", 10)]

    def target(data):
        return {"accuracy": 0.5, "skill/topic": 0.25, "skill/spam": 0.75}

    env = DataGenEnv(
        target_model=target, validation_dataset=validation, observe_skills=True, **SMALL
    )
    assert env.skills == ("topic", "spam")
    obs, info = env.reset(seed=0)
    assert info["skill_metrics"] == {"topic": 0.25, "spam": 0.75}
    assert obs[21:23].tolist() == [0.25, 0.75]


def test_skill_slots_the_target_does_not_report_read_minus_one():
    env = DataGenEnv(task="topic+spam", skills=list(CLASSIFICATION_TASKS), focus=True, **SMALL)
    obs, info = env.reset(seed=0)
    k = len(CLASSIFICATION_TASKS)
    skill_obs = dict(zip(CLASSIFICATION_TASKS, obs[22 + k : 22 + 2 * k].tolist()))
    assert skill_obs["sentiment"] == skill_obs["parity"] == skill_obs["animal"] == -1.0
    assert skill_obs["topic"] == pytest.approx(info["skill_metrics"]["topic"])


def test_action_masks_forbid_a_focus_on_skills_the_target_lacks():
    env = DataGenEnv(task="topic+spam", skills=list(CLASSIFICATION_TASKS), focus=True, **SMALL)
    assert env.action_masks().all()  # before reset nothing is known
    env.reset(seed=0)
    mask = env.action_masks()
    assert mask.shape == (int(env.action_space.nvec.sum()),)
    focus = mask[-(1 + len(CLASSIFICATION_TASKS)) :]
    allowed = {"any", *(s for s, ok in zip(CLASSIFICATION_TASKS, focus[1:]) if ok)}
    assert focus[0] and allowed == {"any", "topic", "spam"}
    assert mask[: -len(focus)].all()  # temperature, top_p and template are never masked
    with pytest.raises(ValueError, match="action_mode='discrete'"):
        DataGenEnv(task="topic+spam", action_mode="continuous", **SMALL).action_masks()


def test_maskable_ppo_never_focuses_on_a_skill_the_task_lacks():
    from agents import make_agent

    env = DataGenEnv(
        task="topic+spam",
        skills=list(CLASSIFICATION_TASKS),
        focus=True,
        batch_size=4,
        num_iterations=3,
    )
    focuses = []

    class Seen(gym.Wrapper):
        def step(self, action):
            out = super().step(action)
            focuses.append(out[-1]["focus"])
            return out

    agent = make_agent("maskable_ppo", Seen(env), seed=0, n_steps=6, batch_size=6)
    agent.learn(12)
    assert len(focuses) == 12 and set(focuses) <= {None, "topic", "spam"}, focuses
    obs, _ = env.reset(seed=1)
    for _ in range(20):
        action, _ = agent.predict(obs, action_masks=env.action_masks())
        assert int(action[-1]) in (0, 2, 3)  # any, topic, spam
    with pytest.raises(ValueError, match="action_masks"):
        make_agent("maskable_ppo", gym.make("CartPole-v1"))


def test_focus_needs_skills_the_seed_tasks_name():
    with pytest.raises(ValueError, match="rl_tuning.focus.*unknown: \\['poetry'\\]"):
        DataGenEnv(focus=True, skills=["poetry"], **SMALL)


def test_reset_options_set_the_start():
    env = _skills_env()
    _, info = env.reset(
        seed=0,
        options={"temperature": 0.4, "top_p": 0.7, "template": "evol_deepen", "focus": "spam"},
    )
    assert (info["temperature"], info["top_p"], info["template"], info["focus"]) == (
        0.4,
        0.7,
        "evol_deepen",
        "spam",
    )
    _, info = env.reset(seed=0)  # options hold for one episode only
    assert (info["temperature"], info["top_p"], info["template"], info["focus"]) == (
        1.0,
        0.9,
        "self_instruct",
        None,
    )


def test_reset_randomize_is_seeded_and_varied():
    env = _skills_env()

    def start(seed, **extra):
        _, info = env.reset(seed=seed, options={"randomize": True, **extra})
        return (info["temperature"], info["top_p"], info["template"], info["focus"])

    assert start(5) == start(5)
    starts = {start(s) for s in range(12)}
    assert len(starts) == 12
    assert len({s[2] for s in starts}) > 3 and len({s[3] for s in starts}) > 2
    assert all(0.2 <= s[0] <= 1.6 and 0.5 <= s[1] <= 1.0 for s in starts)
    assert start(5, template="evol_breadth")[2] == "evol_breadth"  # explicit options win


@pytest.mark.parametrize(
    "options, match",
    [
        ({"temperature": 3.0}, "temperature=3.0"),
        ({"top_p": "high"}, "top_p='high'"),
        ({"template": "poetry"}, "poetry"),
        ({"focus": "poetry"}, "focus='poetry'"),
        ({"tempreature": 0.5}, "unknown reset option 'tempreature'"),
    ],
)
def test_bad_reset_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        _skills_env().reset(seed=0, options=options)


def test_failed_step_changes_nothing():
    calls = {"n": 0}
    inner, validation = make_builtin_target("sentiment", n_validation=20, n_test=20)

    def flaky(data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory")
        return inner(data)

    env = DataGenEnv(target_model=flaky, validation_dataset=validation, **SMALL)
    env.reset(seed=0)
    env.step(np.array([2, 1, 2]))
    before = (env._settings(), len(env.dataset), env._step_count)
    with pytest.raises(TargetModelError, match="out of memory"):
        env.step(np.array([0, 0, 5]))
    assert (env._settings(), len(env.dataset), env._step_count) == before
    env.step(np.array([1, 1, 2]))  # the episode goes on
