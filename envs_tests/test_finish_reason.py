"""Why a completion stopped (``Completion.finish_reason``) and Self-Instruct's rule that drops a
reply's last task when the token budget cut it."""

from __future__ import annotations

import pickle

import pytest
from support.openai_server import OpenAICompatServer

from datagen_gym.backends.base import Completion, finish_reason
from datagen_gym.backends.openai_backend import OpenAIBackend
from datagen_gym.generators import parsing, prompts
from datagen_gym.generators.generator import Generator


def test_completion_is_a_string_that_keeps_its_reason_through_pickle() -> None:
    c = Completion("1. Add the numbers.", "length")
    assert c == "1. Add the numbers." and c.split(".")[0] == "1"
    again = pickle.loads(pickle.dumps(c))
    assert again == c and finish_reason(again) == "length"
    assert finish_reason("plain text") is None and finish_reason(Completion("x")) is None
    assert finish_reason(Completion("x", "abort")) is None  # a reason we do not act on


@pytest.mark.parametrize("decoder", ["compact", "generate"])
def test_local_model_reports_length_and_stop(teacher, decoder: str) -> None:
    """The embedded teacher through TransformersBackend: a 2-token budget cuts every bootstrap
    continuation; with the full budget some end by themselves (EOS) and are "stop"."""
    old = teacher.decoder
    teacher.decoder = decoder
    try:
        ps = Generator(sampler=None, seed=0).self_instruct.bootstrap_prompts(8)
        cut = teacher.generate(ps, temperature=1.0, top_p=0.9, max_new_tokens=2, seed=0)
        full = teacher.generate(ps, temperature=1.0, top_p=0.9, max_new_tokens=96, seed=0)
    finally:
        teacher.decoder = old
    assert [finish_reason(c) for c in cut] == ["length"] * 8
    reasons = [finish_reason(c) for c in full]
    assert set(reasons) <= {"stop", "length"} and "stop" in reasons


def test_openai_backend_reads_the_servers_finish_reason(teacher) -> None:
    ps = Generator(sampler=None, seed=0).self_instruct.bootstrap_prompts(3)
    with OpenAICompatServer(teacher, model_name="teacher") as srv:
        backend = OpenAIBackend(srv.base_url, model="teacher", api_key_env="NO_SUCH_KEY_ENV")
        cut = backend.generate(ps, temperature=1.0, top_p=0.9, max_new_tokens=2, seed=0)
    assert [finish_reason(c) for c in cut] == ["length"] * 3


LIST = "Sure! Here are some new tasks:\n\n1. Sort the list of numbers.\n2. Name the capital of"


def test_a_reply_cut_inside_its_last_task_loses_that_task() -> None:
    assert parsing.parse_bootstrap(Completion(LIST, "length")) == ["Sort the list of numbers."]
    # the same text, ended by the model (or by a backend that does not say): both tasks kept
    for text in (Completion(LIST, "stop"), LIST):
        assert len(parsing.parse_bootstrap(text)) == 2


def test_a_finished_list_followed_by_cut_commentary_keeps_every_task() -> None:
    text = "1. Sort the list of numbers.\n2. Reverse the words.\n\nThese tasks cover many kin"
    assert parsing.parse_bootstrap(Completion(text, "length")) == [
        "Sort the list of numbers.",
        "Reverse the words.",
    ]


def test_the_papers_parser_drops_a_cut_last_task_too() -> None:
    """The embedded teacher's (completion) path: the papers' format, the same rule."""
    text = " sort the list of numbers.\n10. name the capital of"
    assert parsing.parse_bootstrap(Completion(text, "length"), chat=False) == [
        "Sort the list of numbers."
    ]
    for whole in (Completion(text, "stop"), text, Completion(text + "\n\n11. x", "length")):
        assert parsing.parse_bootstrap(whole, chat=False) == prompts.parse_bootstrap(str(whole))
