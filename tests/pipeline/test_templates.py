"""Templates render exactly the official strings (docs/official-behaviour.md §4.1)."""

import pytest

from internvl_data.pipeline.templates import (
    SYSTEM_INTERNVL2,
    SYSTEM_INTERNVL2_5,
    ConversationError,
    conversation_turns,
    get_template,
    render_conversation,
    render_segments,
)

TWO_TURNS = [("human", "Q1"), ("gpt", "A1"), ("human", "Q2"), ("gpt", "A2")]


def test_system_messages_exact():
    assert len(SYSTEM_INTERNVL2) == 59
    assert SYSTEM_INTERNVL2.endswith("英文名叫InternVL, 是一个有用无害的人工智能助手。")
    assert "大模型，英文名" in SYSTEM_INTERNVL2
    assert SYSTEM_INTERNVL2_5.startswith("你是书生·万象，英文名是InternVL，")


@pytest.mark.parametrize("name", ["Hermes-2", "internlm2-chat"])
def test_chatml_internvl2_no_newline_after_im_end(name):
    s = render_conversation(get_template(name), TWO_TURNS)
    assert s == (
        f"<|im_start|>system\n{SYSTEM_INTERNVL2}<|im_end|><|im_start|>user\nQ1<|im_end|><|im_start|>assistant\nA1"
        "<|im_end|><|im_start|>user\nQ2<|im_end|><|im_start|>assistant\nA2<|im_end|>"
    )


def test_phi3():
    s = render_conversation(get_template("phi3-chat"), TWO_TURNS[:2])
    assert s == f"<|system|>\n{SYSTEM_INTERNVL2}<|end|><|user|>\nQ1<|end|><|assistant|>\nA1<|end|>"


def test_internvl2_5_newline_and_system_turn():
    t = get_template("internvl2_5")
    system, turns = conversation_turns(
        t, [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]
    )
    assert system == "Be brief."
    assert render_conversation(t, turns, system) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    )
    assert render_conversation(t, turns).startswith(f"<|im_start|>system\n{SYSTEM_INTERNVL2_5}<|im_end|>\n")


def test_trained_segments_are_answer_plus_end_token():
    segs = render_segments(get_template("internvl2_5"), [("human", "Q"), ("gpt", "A")])
    assert [(s.text, s.trained) for s in segs][1:] == [
        ("<|im_start|>user\nQ<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("A<|im_end|>", True),
        ("\n", False),
    ]


def test_internlm2_strips_values_others_do_not():
    convs = [{"from": "human", "value": "  Q \n"}, {"from": "gpt", "value": "\nA  "}]
    assert conversation_turns(get_template("internlm2-chat"), convs)[1] == [("human", "Q"), ("gpt", "A")]
    assert conversation_turns(get_template("Hermes-2"), convs)[1] == [("human", "  Q \n"), ("gpt", "\nA  ")]


def test_empty_message_quirk_header_without_separator():
    s = render_conversation(get_template("Hermes-2"), [("human", "Q"), ("gpt", "")])
    assert s.endswith("<|im_start|>user\nQ<|im_end|><|im_start|>assistant\n")
    # internvl2_5 builds its own blocks: no quirk
    s = render_conversation(get_template("internvl2_5"), [("human", "Q"), ("gpt", "")])
    assert s.endswith("<|im_start|>assistant\n<|im_end|>\n")


def test_leading_gpt_turn_dropped_and_alternation_checked():
    t = get_template("Hermes-2")
    _, turns = conversation_turns(
        t, [{"from": "gpt", "value": "x"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]
    )
    assert turns == [("human", "Q"), ("gpt", "A")]
    with pytest.raises(ConversationError, match="alternate"):
        conversation_turns(t, [{"from": "human", "value": "Q"}, {"from": "human", "value": "Q"}])
    with pytest.raises(ConversationError, match="'system'"):
        conversation_turns(t, [{"from": "human", "value": "Q"}, {"from": "system", "value": "S"}])
    # internvl2_5 does not check alternation
    assert len(conversation_turns(get_template("internvl2_5"), [{"from": "human", "value": "Q"}] * 2)[1]) == 2


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown template 'vicuna'.*Hermes-2"):
        get_template("vicuna")
