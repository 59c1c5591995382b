import pytest

from datagen_gym import Sampler

PROMPT = "Come up with a series of classification tasks:\n1. Is this email spam or not spam?\n2."


def _distinct(sampler, n=48, seed=0):
    """Distinct words over ``n`` sampled continuations. (Distinct whole continuations saturate:
    at 24 tokens nearly every continuation differs at T=0.2 already.)"""
    texts = sampler.generate([PROMPT] * n, max_new_tokens=24, seed=seed)
    return len({w for t in texts for w in t.split()})


def test_temperature_raises_diversity(teacher):
    cold = _distinct(Sampler(teacher, temperature=0.2, top_p=1.0))
    hot = _distinct(Sampler(teacher, temperature=1.5, top_p=1.0))
    assert hot > cold


def test_small_top_p_lowers_diversity(teacher):
    narrow = _distinct(Sampler(teacher, temperature=1.0, top_p=0.1))
    wide = _distinct(Sampler(teacher, temperature=1.0, top_p=1.0))
    assert narrow < wide


def test_greedy_and_seeded_sampling_repeat(teacher):
    greedy = Sampler(teacher, temperature=0.0)
    assert len(set(greedy.generate([PROMPT] * 4, max_new_tokens=16))) == 1
    s = Sampler(teacher, temperature=1.0, top_p=0.9)
    a = s.generate([PROMPT] * 8, max_new_tokens=24, seed=123)
    b = s.generate([PROMPT] * 8, max_new_tokens=24, seed=123)
    assert a == b and len(set(a)) > 1


def test_bounds_are_checked(teacher):
    s = Sampler(teacher)
    with pytest.raises(ValueError, match=r"temperature=2.5 is out of range; allowed: \[0.0, 2.0\]"):
        s.set_params(temperature=2.5)
    with pytest.raises(ValueError, match="top_p=0.0 is out of range"):
        s.set_params(top_p=0.0)
    s.set_params(temperature=0.3, top_p=0.5)
    assert s.get_params() == {"temperature": 0.3, "top_p": 0.5}


def test_backend_refuses_missing_model(tmp_path):
    from datagen_gym.backends import BackendError, TransformersBackend

    with pytest.raises(BackendError, match="no Hugging Face model"):
        TransformersBackend(tmp_path)
