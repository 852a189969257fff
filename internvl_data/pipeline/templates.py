"""The template registry: the four conversation templates of InternVL2/2.5 and the official MPT rendering
(docs/official-behaviour.md §4.1). Everything that differs between templates is a field of
:class:`Template` (strings, and how the template's preprocess style behaves), so adding a template is one entry
in :data:`TEMPLATES`; a new preprocess style also needs its length arithmetic in ``labels.ARITHMETIC``
(docs/contributing.md).

A conversation is rendered as a list of :class:`Segment` (text + whether the trainer learns it); the rendered
string is their concatenation, so the string and the trained character spans come from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from internvl_data.errors import DataError
from internvl_data.pipeline.special_tokens import IMG_CONTEXT, IMG_END, IMG_START

SYSTEM_INTERNVL2 = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
)
SYSTEM_INTERNVL2_5 = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)
HUMAN, GPT, SYSTEM = "human", "gpt", "system"
MARKER = IMG_START + IMG_CONTEXT + IMG_END  # one image in the text we tokenize (runs are spliced in as ids)


@dataclass(frozen=True, slots=True)
class Template:
    """One official template. ``sep`` follows every message; ``end_token`` is the trained end-of-turn token."""

    name: str
    system_template: str  # contains "{system_message}"
    system_message: str
    user: str  # role header of a human turn
    assistant: str  # role header of a gpt turn
    sep: str
    strip_values: bool  # preprocess_internlm strips every value
    system_turn: bool  # a leading data turn {"from": "system"} replaces the system message
    preprocess: str  # which official preprocess function: internlm | mpt | phi3 | internvl2_5
    # Each turn is tokenized on its own and labelled block-wise (preprocess_internvl2_5): empty values keep
    # their block, images are placed in human turns only, a leading gpt turn is kept. False: one string.
    block_labels: bool = False
    masks_endoftext: bool = False  # preprocess_phi3 also masks every <|endoftext|> id

    @property
    def end_token(self) -> str:
        return self.sep.strip()


_CHATML: dict[str, Any] = dict(
    system_template="<|im_start|>system\n{system_message}",
    user="<|im_start|>user\n",
    assistant="<|im_start|>assistant\n",
)
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "Hermes-2",
            system_message=SYSTEM_INTERNVL2,
            sep="<|im_end|>",
            strip_values=False,
            system_turn=False,
            preprocess="mpt",
            **_CHATML,
        ),
        Template(
            "internlm2-chat",
            system_message=SYSTEM_INTERNVL2,
            sep="<|im_end|>",
            strip_values=True,
            system_turn=False,
            preprocess="internlm",
            **_CHATML,
        ),
        Template(
            "phi3-chat",
            system_template="<|system|>\n{system_message}",
            system_message=SYSTEM_INTERNVL2,
            user="<|user|>\n",
            assistant="<|assistant|>\n",
            sep="<|end|>",
            strip_values=False,
            system_turn=False,
            preprocess="phi3",
            masks_endoftext=True,
        ),
        Template(
            "internvl2_5",
            system_message=SYSTEM_INTERNVL2_5,
            sep="<|im_end|>\n",
            strip_values=False,
            system_turn=True,
            preprocess="internvl2_5",
            block_labels=True,
            **_CHATML,
        ),
    )
}


class ConversationError(DataError, ValueError):
    """A conversation the official preprocessor would reject (the sample is dropped and replaced).

    ``code``: IVL202 (turn without string ``from``/``value``), IVL207 (unknown role), IVL208 (``system`` role
    where the template has none), IVL209 (roles do not alternate).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _role_error(j: int, role: Any) -> ConversationError:
    if not isinstance(role, str):
        return ConversationError("IVL202", f"turn {j} has no string `from`")
    code = "IVL208" if role == SYSTEM else "IVL207"
    return ConversationError(code, f"turn {j}: role {role!r} is not human/gpt")


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATES)}") from None


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    trained: bool
    turn: int  # index into the turns (-1: system block)


def conversation_turns(
    template: Template, conversations: list[dict[str, Any]]
) -> tuple[str | None, list[tuple[str, str]]]:
    """``(system, [(role, value), ...])`` as the official preprocessor reads a ``conversations`` list.

    InternVL2 templates: roles human/gpt only, a leading non-human turn is dropped, then roles must alternate.
    ``internvl2_5``: an optional leading ``system`` turn replaces the system message, roles human/gpt, no
    alternation check. Raises :class:`ConversationError` where the official code raises.
    """
    convs = list(conversations)
    system = None
    if template.system_turn:
        if convs and convs[0].get("from") == SYSTEM:
            system = _text(convs[0], 0)
            convs = convs[1:]
    elif convs and convs[0].get("from") != HUMAN:
        if convs[0].get("from") != GPT:  # the official role map raises KeyError before dropping
            raise _role_error(0, convs[0].get("from"))
        convs = convs[1:]
    turns = []
    for j, c in enumerate(convs):
        role = c.get("from")
        if role not in (HUMAN, GPT):
            raise _role_error(j, role)
        if not template.system_turn and role != (HUMAN, GPT)[j % 2]:
            raise ConversationError("IVL209", f"turn {j}: roles must alternate human, gpt, ... (found {role!r})")
        value = _text(c, j)
        turns.append((role, value.strip() if template.strip_values else value))
    return system, turns


def _text(turn: dict[str, Any], j: int) -> str:
    value = turn.get("value")
    if not isinstance(value, str):
        raise ConversationError("IVL202", f"turn {j} has no string `value`")
    return value


def render_segments(template: Template, turns: list[tuple[str, str]], system: str | None = None) -> list[Segment]:
    """The MPT rendering as segments; trained = each gpt message + its end-of-turn token.

    An empty message renders its role header only and no separator (the official ``if message`` quirk).
    """
    sys_text = template.system_template.format(system_message=template.system_message if system is None else system)
    segs = [Segment(sys_text + template.sep, False, -1)]
    end = template.end_token
    rest = template.sep[len(end) :] if template.sep.startswith(end) else ""
    for k, (role, msg) in enumerate(turns):
        header = template.user if role == HUMAN else template.assistant
        if not msg and not template.block_labels:  # the block-wise preprocess builds its own blocks
            segs.append(Segment(header, False, k))
        elif role == HUMAN:
            segs.append(Segment(header + msg + template.sep, False, k))
        else:
            segs.append(Segment(header, False, k))
            segs.append(Segment(msg + end, True, k))
            if rest:
                segs.append(Segment(rest, False, k))
    return segs


def render_conversation(template: Template, turns: list[tuple[str, str]], system: str | None = None) -> str:
    """The exact string the official ``get_prompt()`` returns for these turns."""
    return "".join(s.text for s in render_segments(template, turns, system))


def place_images(t: Template, segs: list[Segment], num_image: int) -> tuple[list[tuple[Segment, list[int]]], int]:
    """Replace the first ``num_image`` ``<image>`` (whole string; human turns only for internvl2_5) by MARKER.

    Returns ``[(segment, [image indices placed in it]), ...]`` and the number placed.
    """
    out, placed = [], 0
    for seg in segs:
        text, here = seg.text, []
        eligible = not t.block_labels or (seg.turn >= 0 and not seg.trained and text.startswith(t.user))
        while placed < num_image and eligible and "<image>" in text:
            text = text.replace("<image>", MARKER, 1)
            here.append(placed)
            placed += 1
        out.append((Segment(text, seg.trained, seg.turn) if here else seg, here))
    return out, placed


def trained_spans(segs: list[tuple[Segment, list[int]]]) -> list[tuple[int, int]]:
    """Sorted ``[start, end)`` character spans of the trained segments in the joined text."""
    spans, pos = [], 0
    for seg, _ in segs:
        if seg.trained:
            spans.append((pos, pos + len(seg.text)))
        pos += len(seg.text)
    return spans


def expanded_text(segs: list[tuple[Segment, list[int]]], runs: list[int]) -> str:
    """The rendered string with every image fully expanded, as the official code tokenizes it."""
    parts = "".join(s.text for s, _ in segs).split(MARKER)
    out = [parts[0]]
    for k, rest in enumerate(parts[1:]):
        out.append(IMG_START + IMG_CONTEXT * runs[k] + IMG_END)
        out.append(rest)
    return "".join(out)
