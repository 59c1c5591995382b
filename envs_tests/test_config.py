import pytest

from datagen_gym import Config, ConfigError, RLTuningConfig


def test_defaults_have_seed_fields():
    rl = Config().rl_tuning
    for name in (
        "enable_rl_tuning",
        "num_iterations",
        "batch_size",
        "rl_algorithm",
        "learning_rate",
        "reward_metric",
        "target_model_path",
        "validation_data_path",
    ):
        assert hasattr(rl, name)
    assert isinstance(rl, RLTuningConfig)


def test_yaml_round_trip(tmp_path):
    cfg = Config.from_dict(
        {
            "sampling": {"temperature": 0.5, "top_p": 0.7},
            "rl_tuning": {"batch_size": 32, "rl_algorithm": "ppo"},
        }
    )
    path = tmp_path / "c.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg
    assert Config.load(path).sampling.temperature == 0.5


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"sampling": {"temprature": 1.0}}, "sampling.temprature"),
        ({"samplng": {}}, "unknown key 'samplng'"),
        (
            {"sampling": {"temperature": 3.0}},
            "sampling.temperature=3.0 is out of range; allowed: [0.0, 2.0]",
        ),
        ({"sampling": {"top_p": 0.0}}, "sampling.top_p=0.0 is out of range; allowed: [0.05, 1.0]"),
        ({"rl_tuning": {"batch_size": 0}}, "rl_tuning.batch_size=0 is out of range"),
        ({"rl_tuning": {"batch_size": 2.5}}, "rl_tuning.batch_size must be an integer"),
        ({"rl_tuning": {"learning_rate": 0}}, "allowed: (0.0, 10.0]"),
        ({"rl_tuning": {"action_mode": "box"}}, "rl_tuning.action_mode='box' is not allowed"),
        ({"rl_tuning": {"enable_rl_tuning": "yes"}}, "must be true or false"),
    ],
)
def test_bad_values_name_the_field(data, needle):
    with pytest.raises(ConfigError) as err:
        Config.from_dict(data)
    assert needle in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.load(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        Config.load(scalar)


def test_replace_validates():
    cfg = Config().replace(rl_tuning={"batch_size": 8})
    assert cfg.rl_tuning.batch_size == 8
    with pytest.raises(ConfigError, match="rl_tuning.batch_size"):
        Config().replace(rl_tuning={"batch_size": -1})
