"""The fused GPT-2 decoder: the same network as the Hugging Face model, the same sampling
distribution as ``model.generate`` (temperature, top-p), repeatable, and a fallback for models
it does not serve."""

import pytest
import torch
from scipy.stats import chisquare
from support.prompts import TASKS
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from datagen_gym.backends import compact_decoding, fused_gpt2
from datagen_gym.generators import prompts


def _batches(tok):
    """A batch without a shared prefix (tasks of different lengths) and one whose rows share
    a long few-shot header (classification prompts), left-padded."""
    plain = tok(TASKS, return_tensors="pt", padding=True)
    shared = tok(
        [prompts.classification_check_prompt(t) for t in TASKS], return_tensors="pt", padding=True
    )
    return {"plain": plain, "shared": shared}


@pytest.fixture(scope="module")
def fused(teacher):
    return fused_gpt2.FusedGPT2(teacher.model)


def _hf_logits(model, input_ids, attention_mask):
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions)
    return out.logits[:, -1]


def _fused_logits(fused, input_ids, attention_mask, share_prefix):
    """The fused decoder's next-token logits after a prompt, read through a greedy step."""
    captured = []
    forward = fused.forward

    def capture(*args, **kwargs):
        out = forward(*args, **kwargs)
        captured.append(out)
        return out

    fused.forward = capture
    try:
        fused_gpt2.sample(
            fused,
            input_ids,
            attention_mask,
            temperature=0.0,
            top_p=1.0,
            max_new_tokens=1,
            eos_token_id=0,
            pad_token_id=0,
            share_prefix=share_prefix,
        )
    finally:
        del fused.forward
    return torch.cat([c for c in captured if c.dim() == 2])


@pytest.mark.parametrize("batch", ["plain", "shared"])
@pytest.mark.parametrize("share_prefix", [False, True])
def test_logits_match_the_hugging_face_forward(teacher, fused, batch, share_prefix):
    enc = _batches(teacher.tokenizer)[batch]
    if batch == "shared" and share_prefix:
        prefix = compact_decoding.common_prefix_length(enc["attention_mask"], enc["input_ids"])
        assert prefix >= fused_gpt2.MIN_SHARED_PREFIX  # the shared-prefix path is exercised
    ref = _hf_logits(teacher.model, enc["input_ids"], enc["attention_mask"])
    ours = _fused_logits(fused, enc["input_ids"], enc["attention_mask"], share_prefix)
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("batch", ["plain", "shared"])
def test_greedy_tokens_match_the_compact_decoder(teacher, fused, batch):
    """Decoding steps through the KV cache, row compaction and the shared prefix agree with
    the reference decoder: greedy continuations are the same tokens (float rounding could
    flip a near-tie; on this model and these prompts none does)."""
    enc = _batches(teacher.tokenizer)[batch]
    args = dict(temperature=0.0, top_p=1.0, max_new_tokens=40, eos_token_id=0, pad_token_id=0)
    ref = compact_decoding.sample(teacher.model, enc["input_ids"], enc["attention_mask"], **args)
    ours = fused_gpt2.sample(fused, enc["input_ids"], enc["attention_mask"], **args)
    assert ours.shape == ref.shape
    assert torch.equal(ours, ref)


def _reference_probs(logits, temperature, top_p):
    """Hugging Face's warpers, as model.generate(do_sample=True, top_k=0) applies them."""
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize(
    "temperature,top_p,rounds",
    [(1.0, 1.0, 4), (1.0, 0.9, 4), (0.7, 0.5, 4), (1.5, 0.95, 4), (1.0, 0.2, 4), (1.0, 0.9, 0)],
)
def test_sampled_tokens_follow_the_reference_distribution(
    teacher, fused, monkeypatch, temperature, top_p, rounds
):
    """Many draws from the sampler on real next-token logits: their frequencies fit the
    distribution model.generate samples from (chi-square per prompt), and their total variation
    distance from it is what sampling noise gives. ``rounds=0`` takes the sorted fallback path
    only."""
    monkeypatch.setattr(fused_gpt2, "REJECTION_ROUNDS", rounds)
    enc = _batches(teacher.tokenizer)["plain"]
    logits = _hf_logits(teacher.model, enc["input_ids"], enc["attention_mask"])
    draws = 20_000
    gen = torch.Generator().manual_seed(0)
    for row in range(4):
        ref = _reference_probs(logits[row : row + 1], temperature, top_p)[0].double()
        repeated = logits[row : row + 1].expand(draws, -1).contiguous()
        uniforms = torch.rand((draws, rounds + 1), generator=gen)
        tokens = fused_gpt2._nucleus_sample(repeated, temperature, top_p, uniforms)
        counts = torch.bincount(tokens, minlength=ref.numel()).double()
        assert counts[ref == 0].sum() == 0, "a token outside the nucleus was drawn"
        support = ref > 0
        # Pool the rare tokens so every expected count is at least 5 (chi-square's condition).
        rare = support & (ref * draws < 5)
        observed = torch.cat([counts[support & ~rare], counts[rare].sum()[None]])
        expected = torch.cat([ref[support & ~rare], ref[rare].sum()[None]]) * draws
        if expected[-1] == 0:
            observed, expected = observed[:-1], expected[:-1]
        if len(expected) > 1:
            assert chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-4
        # Total variation from the reference, against what torch.multinomial's own draws of
        # the reference show (sampling noise grows with the support: 2048 tokens at top_p=1).
        tv = 0.5 * (counts / draws - ref).abs().sum()
        noise_draws = torch.multinomial(ref.float(), draws, replacement=True, generator=gen)
        noise = 0.5 * (torch.bincount(noise_draws, minlength=ref.numel()) / draws - ref).abs().sum()
        assert tv < 1.3 * noise + 0.005, (row, float(tv), float(noise))


def test_same_seed_same_tokens_and_compaction_changes_nothing(teacher, fused, monkeypatch):
    tok = teacher.tokenizer
    enc = tok(
        TASKS + [prompts.classification_check_prompt(t) for t in TASKS],
        return_tensors="pt",
        padding=True,
    )
    args = dict(temperature=1.0, top_p=0.9, max_new_tokens=48, eos_token_id=0, pad_token_id=0)

    def run(seed):
        return fused_gpt2.sample(
            fused,
            enc["input_ids"],
            enc["attention_mask"],
            **args,
            generator=torch.Generator().manual_seed(seed),
        )

    first = run(1)
    assert torch.equal(first, run(1))
    assert not torch.equal(first, run(2))
    ended = (first == 0).any(1)
    assert 0 < int(ended.sum()) < len(TASKS) * 2  # some rows finished early: compaction ran
    # Without compaction every row stays in the batch to the end: the same tokens, since each
    # row draws its own random numbers whatever the others do.
    monkeypatch.setattr(fused_gpt2, "COMPACT_FRACTION", 1.0)
    assert torch.equal(first, run(1))


def test_backend_uses_the_fused_decoder_and_falls_back(teacher, tmp_path, caplog):
    import shutil

    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from datagen_gym.backends import TransformersBackend

    assert teacher.decoder == "fused"
    args = dict(temperature=1.0, top_p=0.9, max_new_tokens=30, seed=3)
    out = teacher.generate(TASKS, **args)
    assert out == teacher.generate(TASKS, **args)  # repeatable through the backend's seed
    assert any(text.strip() for text in out)

    assert "not a GPT-2 model" in fused_gpt2.unsupported_reason(
        LlamaForCausalLM(
            LlamaConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                vocab_size=64,
            )
        )
    )
    # A GPT-2 teacher whose generation config sets a repetition penalty goes to
    # model.generate, which applies it.
    penalised = tmp_path / "teacher"
    shutil.copytree(teacher.model_path, penalised)
    config = GenerationConfig.from_pretrained(penalised)
    config.repetition_penalty = 1.5
    config.save_pretrained(penalised)
    with caplog.at_level("INFO"):
        backend = TransformersBackend(penalised)
    assert backend.decoder == "generate"
    assert "repetition_penalty" in caplog.text


def test_prompt_past_the_context_is_refused(fused):
    ids = torch.ones((1, 500), dtype=torch.long)
    with pytest.raises(ValueError, match="exceed the model's 512 positions"):
        fused_gpt2.sample(
            fused,
            ids,
            torch.ones_like(ids),
            temperature=1.0,
            top_p=0.9,
            max_new_tokens=20,
            eos_token_id=0,
            pad_token_id=0,
        )


@pytest.mark.parametrize(
    "case", ["one_row", "eos_list", "no_eos", "one_token", "identical_prompts", "long_output"]
)
def test_edge_cases_match_the_compact_decoder_greedily(teacher, fused, case):
    """Greedy decoding has no randomness, so the decoders must agree token for token on the
    shapes the env rarely makes: one row, several or no EOS ids, one new token, rows that
    are all the same prompt (the shared prefix is all but one token), and a long generation
    (200 new tokens, most rows finished and dropped long before the last)."""
    tok = teacher.tokenizer
    texts = {"one_row": TASKS[:1], "identical_prompts": [TASKS[0]] * 4}.get(case, TASKS[:6])
    enc = tok(texts, return_tensors="pt", padding=True)
    eos = {"eos_list": [0, 5], "no_eos": None}.get(case, 0)
    new_tokens = {"one_token": 1, "long_output": 200}.get(case, 24)
    args = dict(
        temperature=0.0, top_p=1.0, max_new_tokens=new_tokens, eos_token_id=eos, pad_token_id=0
    )
    ref = compact_decoding.sample(teacher.model, enc["input_ids"], enc["attention_mask"], **args)
    ours = fused_gpt2.sample(fused, enc["input_ids"], enc["attention_mask"], **args)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.5, 0.05), (2.0, 0.9)])
def test_sampling_ends_and_pads_like_the_reference(teacher, fused, temperature, top_p):
    """Sampled rows end at their first EOS and are padded after it; the shape follows the
    longest row, as in model.generate."""
    enc = _batches(teacher.tokenizer)["shared"]
    out = fused_gpt2.sample(
        fused,
        enc["input_ids"],
        enc["attention_mask"],
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=30,
        eos_token_id=0,
        pad_token_id=0,
        generator=torch.Generator().manual_seed(5),
    )
    assert out.shape[0] == len(TASKS) and 1 <= out.shape[1] <= 30
    for row in out.tolist():
        if 0 in row:
            assert all(t == 0 for t in row[row.index(0) :])
    if out.shape[1] < 30:
        assert all(0 in row for row in out.tolist())  # it stopped because every row ended
