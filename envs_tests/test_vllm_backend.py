"""VLLMBackend: the clear error without vLLM, the batching logic on a stand-in ``vllm`` module,
and a real run on the embedded teacher when vLLM and a CUDA GPU are present."""

import importlib.util
import sys
import types

import pytest

from datagen_gym.backends.base import BackendError, LLMBackend
from datagen_gym.backends.vllm_backend import VLLMBackend, VLLMNotInstalledError


def test_missing_vllm_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail, installed or not
    with pytest.raises(ImportError, match=r'pip install "datagen-gym\[vllm\]"') as err:
        VLLMBackend("some/model")
    assert isinstance(err.value, BackendError) and isinstance(err.value, VLLMNotInstalledError)
    assert "CUDA GPU" in str(err.value)


class _FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class _FakeLLM:
    """Echoes each prompt with its sampling settings, so order and parameters can be checked."""

    instances: list = []

    def __init__(self, **kw):
        self.kw = kw
        self.calls = []
        _FakeLLM.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((list(prompts), params, use_tqdm))
        per = params if isinstance(params, list) else [params] * len(prompts)
        assert len(per) == len(prompts)
        out = []
        for p, sp in zip(prompts, per):
            if p == "boom":
                raise RuntimeError("CUDA out of memory")
            text = f"{p}|T={sp.kw['temperature']}|p={sp.kw['top_p']}|seed={sp.kw.get('seed')}"
            out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
        return out


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = _FakeLLM, _FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    _FakeLLM.instances.clear()
    return mod


def test_generate_batches_in_order_with_per_prompt_seeds(fake_vllm):
    backend = VLLMBackend("m", dtype="bfloat16", max_model_len=512, enforce_eager=True)
    assert isinstance(backend, LLMBackend) and backend.deterministic is False
    llm = _FakeLLM.instances[0]
    assert llm.kw == dict(
        model="m",
        dtype="bfloat16",
        tensor_parallel_size=1,
        gpu_memory_utilization=0.9,
        max_model_len=512,
        enforce_eager=True,
    )
    out = backend.generate(["a", "b", "a"], temperature=0.7, top_p=0.8, max_new_tokens=5, seed=10)
    assert out == ["a|T=0.7|p=0.8|seed=10", "b|T=0.7|p=0.8|seed=11", "a|T=0.7|p=0.8|seed=12"]
    prompts, params, use_tqdm = llm.calls[0]
    assert prompts == ["a", "b", "a"] and use_tqdm is False  # one batched call
    assert params[0].kw["max_tokens"] == 5


def test_greedy_unseeded_and_empty(fake_vllm):
    backend = VLLMBackend("m")
    assert backend.generate([], temperature=1.0, top_p=0.9, max_new_tokens=4) == []
    out = backend.generate(["x"], temperature=0.0, top_p=0.3, max_new_tokens=4)
    assert out == ["x|T=0.0|p=1.0|seed=None"]  # temperature 0 decodes greedily
    assert not isinstance(_FakeLLM.instances[0].calls[-1][1], list)


def test_engine_errors_become_backend_errors(fake_vllm):
    backend = VLLMBackend("m")
    with pytest.raises(BackendError, match="CUDA out of memory"):
        backend.generate(["boom"], temperature=1.0, top_p=0.9, max_new_tokens=4)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        VLLMBackend("m", gpu_memory_utilization=1.5)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


_NO_VLLM = (
    "vLLM is not installed"
    if importlib.util.find_spec("vllm") is None
    else "vLLM needs a CUDA GPU"
    if not _cuda()
    else None
)


@pytest.mark.skipif(_NO_VLLM is not None, reason=_NO_VLLM or "")
def test_real_vllm_on_embedded_teacher():
    from datagen_gym.backends import EMBEDDED_TEACHER
    from datagen_gym.generators import prompts

    backend = VLLMBackend(
        str(EMBEDDED_TEACHER),
        dtype="float32",
        gpu_memory_utilization=0.2,
        max_model_len=512,
        enforce_eager=True,
    )
    ps = [
        prompts.input_first_prompt("Convert the sentence to uppercase."),
        prompts.input_first_prompt("Add the two numbers."),
    ]
    out = backend.generate(ps, temperature=0.0, top_p=1.0, max_new_tokens=24)
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    again = backend.generate(ps, temperature=0.0, top_p=1.0, max_new_tokens=24)
    assert again == out  # greedy decoding repeats
    sampled = backend.generate(ps * 4, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0)
    assert len(sampled) == 8
