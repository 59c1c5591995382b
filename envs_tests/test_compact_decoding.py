"""The compact decoder returns model.generate's tokens while dropping finished rows."""

import pytest
import torch
from support.prompts import TASKS
from transformers.cache_utils import DynamicCache

from datagen_gym.backends import compact_decoding
from datagen_gym.backends.compact_decoding import GrowingCacheLayer, common_prefix_length, sample
from datagen_gym.config import Config, ConfigError
from datagen_gym.generators import prompts


def _instance_prompts():
    return [prompts.classification_check_prompt(t) for t in TASKS] + TASKS


def _hf(model, enc, temperature, top_p, max_new_tokens):
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=0, eos_token_id=0)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        ids = model.generate(**enc, **kwargs)
    return ids[:, enc["input_ids"].shape[1] :]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.9), (0.7, 1.0), (1.4, 0.5), (0.0, 1.0)])
def test_same_tokens_as_model_generate(teacher, temperature, top_p, monkeypatch):
    tok, model = teacher.tokenizer, teacher.model
    enc = tok(_instance_prompts(), return_tensors="pt", padding=True)
    compactions = []
    select = GrowingCacheLayer.batch_select_indices

    def counting_select(self, indices):
        compactions.append(len(indices))
        return select(self, indices)

    monkeypatch.setattr(GrowingCacheLayer, "batch_select_indices", counting_select)
    for seed in range(3):
        torch.manual_seed(seed)
        ref = _hf(model, enc, temperature, top_p, 48)
        torch.manual_seed(seed)
        ours = sample(
            model,
            enc["input_ids"],
            enc["attention_mask"],
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=48,
            eos_token_id=0,
            pad_token_id=0,
            share_prefix=False,
        )
        assert ours.shape == ref.shape
        assert torch.equal(ours, ref)
    assert compactions, "no row finished early: the test does not exercise compaction"


def test_common_prefix_of_left_padded_rows():
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [5, 6, 7, 9, 9, 9], [0, 5, 6, 7, 8, 1]])
    mask = (torch.arange(6) >= torch.tensor([[2], [0], [1]])).long()
    assert common_prefix_length(mask, ids) == 3
    # Identical prompts keep one token of their own to predict from.
    assert (
        common_prefix_length(torch.ones(2, 4, dtype=torch.long), torch.tensor([[1, 2, 3, 4]] * 2))
        == 3
    )
    assert (
        common_prefix_length(
            mask, torch.tensor([[0, 0, 1, 2, 3, 4], [9, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5]])
        )
        == 0
    )


def test_shared_prefix_matches_a_full_prefill(teacher):
    """Evol-Instruct prompts share a long header; computing it once changes only rounding."""
    tok, model = teacher.tokenizer, teacher.model
    evol = [prompts.evol_prompt("deepen", t) for t in TASKS]
    enc = tok(evol, return_tensors="pt", padding=True)
    assert common_prefix_length(enc["attention_mask"], enc["input_ids"]) >= 100
    runs = {}
    for share in (False, True):
        calls = []
        forward = model.forward

        logits = []

        def counting_forward(*args, calls=calls, forward=forward, logits=logits, **kwargs):
            calls.append(kwargs["input_ids"].shape)
            out = forward(*args, **kwargs)
            if len(calls) <= 3:
                logits.append(out.logits[:, -1].clone())
            return out

        model.forward = counting_forward
        try:
            torch.manual_seed(0)
            runs[share] = (
                sample(
                    model,
                    enc["input_ids"],
                    enc["attention_mask"],
                    temperature=1.0,
                    top_p=0.9,
                    max_new_tokens=32,
                    eos_token_id=0,
                    pad_token_id=0,
                    share_prefix=share,
                ),
                logits,
                calls,
            )
        finally:
            del model.forward
    (full, full_logits, full_calls), (shared, shared_logits, shared_calls) = runs[False], runs[True]
    assert shared_calls[0][0] == 1 and shared_calls[1][1] < full_calls[0][1] // 2
    torch.testing.assert_close(shared_logits[1], full_logits[0], rtol=1e-4, atol=1e-4)
    assert (shared == full).all(dim=1).float().mean() >= 0.75


def test_cache_grows_past_its_reserve(teacher):
    """With no room reserved the buffers double while decoding; the logits do not change."""
    tok, model = teacher.tokenizer, teacher.model
    enc = tok(TASKS[:3], return_tensors="pt", padding=True)
    growing = compact_decoding.Cache(layer_class_to_replicate=lambda: GrowingCacheLayer(0))
    dynamic = DynamicCache()
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.inference_mode():
        for _ in range(enc["input_ids"].shape[1] + 3):  # more than doubles the prompt length
            a = model(input_ids=ids, attention_mask=mask, cache=growing, use_cache=True)
            b = model(input_ids=ids, attention_mask=mask, cache=dynamic, use_cache=True)
            assert torch.equal(a.logits, b.logits)
            ids = a.logits[:, -1:].argmax(-1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
    layer = growing.layers[0]
    assert layer.get_seq_length() == dynamic.get_seq_length() == mask.shape[1] - 1
    assert layer._keys.shape[-2] >= 2 * enc["input_ids"].shape[1]


def test_backend_decoders_agree_and_generation_ends_at_max_tokens(teacher):
    from datagen_gym.backends import TransformersBackend

    hf = TransformersBackend(teacher.model_path, decoder="generate")
    exact = TransformersBackend(teacher.model_path, decoder="compact", share_prefix=False)
    args = dict(temperature=1.0, top_p=0.9, max_new_tokens=40, seed=7)
    # Two backend batches in one call: the random stream stays aligned across them.
    exact.max_batch_size = hf.max_batch_size = 10
    assert exact.generate(_instance_prompts(), **args) == hf.generate(_instance_prompts(), **args)
    one = teacher.generate(["1."], temperature=1.0, top_p=1.0, max_new_tokens=5, seed=0)
    assert 0 < len(tok_ids := teacher.tokenizer(one[0])["input_ids"]) <= 5, tok_ids


def test_bad_decoder_is_refused(teacher):
    from datagen_gym.backends import TransformersBackend

    with pytest.raises(ValueError, match="decoder must be one of"):
        TransformersBackend(teacher.model_path, decoder="beam")
    with pytest.raises(ConfigError, match="sampling.decoder"):
        Config.from_dict({"sampling": {"decoder": "beam"}})


def test_models_it_cannot_serve_fall_back_to_generate(teacher, tmp_path):
    import shutil
    from types import SimpleNamespace

    from transformers import GenerationConfig, GPTNeoConfig, MistralConfig, Qwen2MoeConfig, T5Config

    from datagen_gym.backends import TransformersBackend

    def model(config, forward=teacher.model.forward, generation=None):
        return SimpleNamespace(
            config=config, forward=forward, generation_config=generation or GenerationConfig()
        )

    reason = compact_decoding.unsupported_reason
    assert reason(teacher.model) is None
    assert reason(model(MistralConfig(sliding_window=None))) is None
    assert reason(model(Qwen2MoeConfig(use_sliding_window=False))) is None
    assert "sliding_window=8" in reason(model(MistralConfig(sliding_window=8)))
    assert "window_size=8" in reason(model(GPTNeoConfig(window_size=8)))
    assert "encoder-decoder" in reason(model(T5Config()))
    assert "cache" in reason(
        model(MistralConfig(sliding_window=None), forward=lambda input_ids, past_key_values: 0)
    )
    assert "repetition_penalty=1.3" in reason(
        model(
            MistralConfig(sliding_window=None), generation=GenerationConfig(repetition_penalty=1.3)
        )
    )
    assert (
        reason(
            model(
                MistralConfig(sliding_window=None),
                generation=GenerationConfig(repetition_penalty=1.0, top_k=50),
            )
        )
        is None
    )

    # A teacher whose generation config sets a repetition penalty is decoded by model.generate,
    # which applies it.
    penalised = tmp_path / "teacher"
    shutil.copytree(teacher.model_path, penalised)
    config = GenerationConfig.from_pretrained(penalised)
    config.repetition_penalty = 1.5
    config.save_pretrained(penalised)
    backend = TransformersBackend(penalised)
    assert backend.decoder == "generate"
    args = dict(temperature=1.0, top_p=0.9, max_new_tokens=30, seed=0)
    reference = TransformersBackend(penalised, decoder="generate")
    assert backend.generate(TASKS, **args) == reference.generate(TASKS, **args)
    assert backend.generate(TASKS, **args) != teacher.generate(TASKS, **args)


@pytest.mark.parametrize(
    "case", ["one_row", "eos_list", "no_eos", "one_token", "greedy_shared", "identical_prompts"]
)
def test_edge_cases_match_model_generate(teacher, case):
    tok, model = teacher.tokenizer, teacher.model
    texts = {"one_row": TASKS[:1], "identical_prompts": [TASKS[0]] * 4}.get(
        case, _instance_prompts()[:6]
    )
    enc = tok(texts, return_tensors="pt", padding=True)
    eos = {"eos_list": [0, 5], "no_eos": None}.get(case, 0)
    temperature = 0.0 if case == "greedy_shared" else 1.0
    new_tokens = 1 if case == "one_token" else 24
    kwargs = dict(max_new_tokens=new_tokens, pad_token_id=0, eos_token_id=eos)
    kwargs.update(
        dict(do_sample=True, temperature=1.0, top_p=0.9, top_k=0)
        if temperature
        else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    )
    torch.manual_seed(3)
    with torch.inference_mode():
        ref = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :]
    torch.manual_seed(3)
    ours = sample(
        model,
        enc["input_ids"],
        enc["attention_mask"],
        temperature=temperature,
        top_p=0.9,
        max_new_tokens=new_tokens,
        eos_token_id=eos,
        pad_token_id=0,
        share_prefix=case in ("greedy_shared", "identical_prompts"),
    )
    assert torch.equal(ours, ref)


def test_right_padding_is_refused(teacher):
    ids = torch.tensor([[5, 6, 7], [5, 6, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="left-padded"):
        sample(
            teacher.model,
            ids,
            mask,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=4,
            eos_token_id=0,
            pad_token_id=0,
        )


def test_cache_layer_keeps_the_dynamic_layer_contract():
    def filled(n_tokens):
        layer = GrowingCacheLayer(reserve=2)
        for t in range(n_tokens):
            kv = torch.full((2, 1, 1, 3), float(t))
            kv[1] += 100
            layer.update(kv, kv.clone())
        return layer

    layer = filled(4)
    layer.crop(-2)
    assert layer.get_seq_length() == 2 and layer.keys.shape[-2] == 2
    k, _ = layer.update(torch.full((2, 1, 1, 3), 9.0), torch.full((2, 1, 1, 3), 9.0))
    assert k[0, 0, :, 0].tolist() == [0.0, 1.0, 9.0]
    layer = filled(3)
    layer.reorder_cache(torch.tensor([1, 0]))
    k, _ = layer.update(torch.zeros(2, 1, 1, 3), torch.zeros(2, 1, 1, 3))
    assert k[0, 0, :, 0].tolist() == [100.0, 101.0, 102.0, 0.0]
    layer = filled(3)
    layer.batch_repeat_interleave(2)
    k, _ = layer.update(torch.zeros(4, 1, 1, 3), torch.zeros(4, 1, 1, 3))
    assert k.shape == (4, 1, 4, 3) and k[1, 0, 0, 0] == 0.0 and k[2, 0, 0, 0] == 100.0
    layer.reset()
    assert layer.get_seq_length() == 0
