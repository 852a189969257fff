"""IVL2xx: checks on one parsed record (shape, media fields, roles, placeholders, grounding, ids).

:func:`check_record` first runs a hand-written fast path that only proves a record clean (one pass over the
turns, ``in``/``count`` on the values); anything unusual goes to :func:`_findings`, which builds the detailed
findings. Structure checks agree with ``schemas/record.schema.json`` (tests/data/test_property.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from internvl_data.checks.catalogue import Case, Consequence, emit, rule
from internvl_data.checks.findings import Finding, Severity
from internvl_data.pipeline.templates import TEMPLATES

E, W = Severity.ERROR, Severity.WARNING
C = Consequence
CONTROL_TOKENS = (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<|im_start|>",
    "<|im_end|>",
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|endoftext|>",
)
GROUNDING_TAGS = ("<ref>", "</ref>", "<box>", "</box>")

rule(
    "IVL201",
    "conversations-missing",
    E,
    "`conversations` is missing, not a list, or empty.",
    "The official loader reads item['conversations'] and its first turn: a missing, non-list or empty value "
    "raises, and the sample is silently replaced by a random other one.",
    '{"image": "a.jpg"}',
    'Add "conversations": [{"from": "human", ...}, {"from": "gpt", ...}].',
    consequence=C.CRASH,  # ref §1.3, §1.5, §3.2
)
rule(
    "IVL202",
    "turn-shape",
    E,
    "A turn is not an object, lacks `from`/`value`, or they are not strings.",
    "The official preprocessor indexes turn['from'] and turn['value'] and joins the values as text: a missing "
    "key or a non-string raises, and the sample is replaced by a random other one.",
    '{"from": "human"}',
    'Give every turn a string "from" and a string "value".',
    consequence=C.CRASH,  # ref §1.3, §3.2
)
rule(
    "IVL203",
    "text-instead-of-value",
    E,
    "A turn uses `text` instead of `value`.",
    "An example in the official FAQ uses `text`; the trainer reads turn['value'], raises KeyError and replaces "
    "the sample with a random other one.",
    '{"from": "gpt", "text": "A cat."}',
    'Rename the key "text" to "value".',
    consequence=C.CRASH,  # ref §1.3, §3.2
)
rule(
    "IVL204",
    "image-null",
    E,
    "`image` is null.",
    "len(None) fails inside the official loader's try, and its error handler then crashes the DataLoader worker: "
    "the run stops.",
    '{"image": null, "conversations": [...]}',
    "Remove the `image` key for text-only records.",
    consequence=C.CRASH,  # ref §1.2
)
rule(
    "IVL205",
    "image-type",
    E,
    "`image` is neither a string nor a list of strings.",
    "The official loader joins each path to `root` with os.path.join: a number, an object or a non-string list "
    "element raises, so the sample never trains (a number even crashes the DataLoader worker, as null does).",
    '{"image": {"path": "a.jpg"}}',
    'Use "image": "a.jpg" or "image": ["a.jpg", "b.jpg"].',
    consequence=C.CRASH,  # ref §1.2, §1.5, §3.2
)
rule(
    "IVL206",
    "image-and-video",
    E,
    "The record has both `image` and `video`.",
    "A non-empty `image` wins: the official loader never reads the video, so the conversation trains with the "
    "image alone and a <video> placeholder stays literal text in it.",
    '{"image": "a.jpg", "video": "v.mp4", ...}',
    "Split it into an image record and a video record.",
    consequence=C.BROKEN,  # ref §1.2, §10.1 (rejects both image and video)
)
rule(
    "IVL207",
    "unknown-role",
    E,
    "A turn's `from` is not human or gpt (or system).",
    "The official InternVL2 role map is exactly {human, gpt}; any other role (user, assistant, Human) raises KeyError "
    "and the sample is replaced by a random other one.",
    '{"from": "user", "value": "hi"}',
    'Use "human" for the user and "gpt" for the assistant.',
    consequence=C.CRASH,  # ref §1.3, §3.2
)
rule(
    "IVL208",
    "system-role",
    W,
    "A turn has the role `system`.",
    "The official InternVL2 templates (Hermes-2, internlm2-chat, phi3-chat) map roles with {human, gpt} only: a system "
    "turn raises KeyError and the sample is replaced by a random other one. Only internvl2_5 accepts it, as the "
    "first turn (it replaces the system prompt).",
    '{"from": "system", "value": "You are ..."}',
    "Remove the system turn (the template's system prompt is always used), or train with internvl2_5 "
    "(pass --template internvl2_5).",
    consequence=C.CRASH,  # ref §1.3, §4.7
    override="without --template or --model ivl-data cannot tell which template trains, and internvl2_5 accepts a "
    "first system turn",
    cases=(
        Case(
            "the template is an InternVL2 one (--template or --model), or the system turn is not the first",
            C.CRASH,
            E,
        ),
    ),
)
rule(
    "IVL209",
    "roles-not-alternating",
    E,
    "Roles do not alternate human, gpt, human, gpt ...",
    "The InternVL2 preprocessors assert strict alternation (after dropping a leading gpt turn): the assertion "
    "fails and the sample is replaced by a random other one.",
    '[{"from": "human"}, {"from": "human"}, {"from": "gpt"}]',
    "Merge consecutive turns of the same role.",
    consequence=C.CRASH,  # ref §1.3, §3.2
)
rule(
    "IVL210",
    "first-turn-not-human",
    W,
    "The conversation starts with a gpt turn.",
    "The InternVL2 preprocessors drop a leading non-human turn: its text never trains and the rest trains as "
    "usual. But the loader has already put the image placeholder ('<image>\\n' when missing) or the video "
    "frames into that first turn: an image record that loses its placeholders with it fails the </img> count "
    "assertion, and a video record keeps its frames without image tokens, which zeroes the micro-batch's loss.",
    '[{"from": "gpt"}, {"from": "human"}, {"from": "gpt"}]',
    "Remove the leading gpt turn or add a question.",
    consequence=C.ALTERED,  # ref §1.3 (source = source[1:]), §1.5, §1.6, §1.7
    cases=(
        Case(
            "the dropped turn takes the image placeholders with it (a single image without <image> in a later "
            "turn, or an image list left with fewer placeholders than images)",
            C.CRASH,
            E,
        ),
        Case("it is a video record (the frames go into the dropped turn)", C.BROKEN, E),
    ),
)
rule(
    "IVL211",
    "empty-value",
    E,
    "A turn's value is empty (a warning when it is only whitespace).",
    "An empty message renders the role header without a separator: the official label arithmetic no longer "
    "matches and the sample trains with no supervision ('tokenization mismatch'); internlm2-chat strips "
    "whitespace-only values to empty.",
    '{"from": "gpt", "value": ""}',
    "Write the text or remove the turn pair.",
    consequence=C.BROKEN,  # ref §1.3, §4.1, §4.3
    cases=(
        Case(
            "the value is only whitespace and the template is not known to be internlm2-chat",
            C.BROKEN,
            W,
            override="only internlm2-chat strips it to empty (then it is an error, as an empty value); Hermes-2, "
            "phi3-chat and internvl2_5 train the whitespace as written, and without --template or --model "
            "ivl-data cannot tell",
        ),
    ),
)
rule(
    "IVL212",
    "last-turn-not-gpt",
    E,
    "The last turn is not a gpt turn.",
    "With Hermes-2/phi3-chat the official label arithmetic stops early and the whole sample gets no "
    "supervision; with internlm2-chat the trailing user text is trained on as if it were an answer.",
    '[{"from": "human"}, {"from": "gpt"}, {"from": "human"}]',
    "End the conversation with a gpt answer.",
    consequence=C.BROKEN,  # ref §1.3, §4.4, §4.5
)
rule(
    "IVL213",
    "control-token",
    E,
    "A value contains a special token (<img>, <IMG_CONTEXT>, <|im_end|> ...).",
    "The official tokenizer reads them as the special ids themselves: a literal <img>/</img> upsets the </img> count check (the "
    "sample is dropped), a literal <IMG_CONTEXT> upsets the image-token count (the micro-batch's loss is "
    "zeroed), and template tokens such as <|im_end|> break the label masking.",
    '{"from": "gpt", "value": "done<|im_end|>"}',
    "Remove the token; only <image>/<video> placeholders and <ref>/<box> grounding tags belong in the text.",
    consequence=C.BROKEN,  # ref §1.3, §5.5
)
rule(
    "IVL214",
    "image-placeholder-missing",
    W,
    "A single-image record has no <image> placeholder.",
    "The official loader prepends '<image>\\n' to the first turn: the sample trains with the image there, "
    "which may not be where you meant it.",
    '{"image": "a.jpg", "conversations": [{"from": "human", "value": "Describe it."}, ...]}',
    "Put <image> where the image belongs (usually '<image>\\n' at the start of the first turn).",
    consequence=C.ALTERED,  # ref §1.5
)
rule(
    "IVL215",
    "image-placeholder-not-first-turn",
    W,
    "A single-image record has <image> only in a later turn.",
    "The official loader only looks at the first turn: it prepends another <image> there, the image goes to "
    "that one, and the later placeholder stays plain text.",
    '[{"from": "human", "value": "Hi"}, {"from": "gpt"}, {"from": "human", "value": "<image>"}]',
    "Move the placeholder into the first turn.",
    consequence=C.ALTERED,  # ref §1.5, §10.1 (warn)
)
rule(
    "IVL216",
    "image-placeholder-extra",
    W,
    "More <image> placeholders than images.",
    "The official loader replaces only as many placeholders as there are images; the extra ones stay literal "
    "'<image>' text (no error).",
    '{"image": "a.jpg", ... "value": "<image>\\n<image>\\nCompare."}',
    "Remove the extra placeholders.",
    consequence=C.ALTERED,  # ref §1.5, §1.6, §10.1 (warn)
)
rule(
    "IVL217",
    "image-placeholder-too-few",
    E,
    "A multi-image record has fewer <image> placeholders than images.",
    "No placeholder is inserted for image lists: the official </img> count assertion fails and the sample is "
    "replaced by a random other one.",
    '{"image": ["a.jpg", "b.jpg"], ... "value": "<image>\\nCompare."}',
    "Add one placeholder per image, e.g. 'Image-1: <image>\\nImage-2: <image>\\n'.",
    consequence=C.CRASH,  # ref §1.6, §3.8
)
rule(
    "IVL218",
    "video-placeholder-missing",
    W,
    "A video record has no <video> in its first turn.",
    "The official loader prepends '<video>\\n' to the first turn, so the frames go there; a <video> in a later "
    "turn stays plain text.",
    '{"video": "v.mp4", "conversations": [{"from": "human", "value": "What happens?"}, ...]}',
    "Start the first turn with '<video>\\n'.",
    consequence=C.ALTERED,  # ref §1.7
)
rule(
    "IVL219",
    "video-placeholder-invalid",
    E,
    "<video> appears more than once or is not followed by a newline.",
    "Only the exact '<video>\\n' in the first turn is expanded into frames; without the newline the sample has "
    "frames but no image tokens, and the official model zeroes the loss of the whole micro-batch.",
    '"value": "<video> What happens?"',
    "Use '<video>\\n' exactly once, in the first turn.",
    consequence=C.BROKEN,  # ref §1.7, §5.5
    cases=(
        Case(
            "<video> appears more than once but the first turn has the exact '<video>\\n', or no <video> (then the "
            "loader prepends it): the frames go there and the other <video> stay literal text",
            C.ALTERED,
            W,
        ),
    ),
)
rule(
    "IVL220",
    "placeholder-without-media",
    W,
    "A placeholder without matching media (<image> in a text or video record, <video> without a video).",
    "Without media the official loader leaves the placeholder as literal text; in a video record a literal "
    "<image> before the frames takes a frame (frames fill the placeholders in string order).",
    '{"conversations": [{"from": "human", "value": "<image>\\nWhat is this?"}, ...]}',
    "Add the media file or remove the placeholder.",
    consequence=C.ALTERED,  # ref §1.4, §1.7, §3.7
)
rule(
    "IVL221",
    "grounding-syntax",
    E,
    "<ref>/<box> tags are unbalanced or a box is not [[x1, y1, x2, y2], ...].",
    "The official trainer trains the answer text as written, and the model learns the grounding format from the "
    "data: malformed <ref>/<box> markup in an answer is what it learns to emit.",
    '"<ref>cat</ref><box>[10, 20, 30, 40]</box>"',
    "Write boxes as <box>[[x1, y1, x2, y2]]</box> with integers.",
    consequence=C.BROKEN,  # ref §1.8
)
rule(
    "IVL222",
    "box-out-of-range",
    E,
    "A box coordinate is outside 0..1000 or x1 > x2 / y1 > y2.",
    "InternVL boxes are integers in [0, 1000] (round(x / W * 1000)), top-left corner first; the official trainer "
    "trains the text as written, so pixel coordinates, fractions or swapped corners teach the model boxes that "
    "point at the wrong place.",
    '"<box>[[120, 40, 1920, 1080]]</box>"',
    "Normalize: round(x1/W*1000), round(y1/H*1000), ... .",
    consequence=C.BROKEN,  # ref §1.8
)
rule(
    "IVL223",
    "length-not-number",
    E,
    "The per-line `length` is not a non-negative number.",
    "Every InternVL2 fine-tune script sets group_by_length, whose sampler sums and sorts these values at "
    "start-up: a string raises and the run stops.",
    '{"length": "512", ...}',
    'Write the token count as a number ("length": 512) or remove the key.',
    consequence=C.CRASH,  # ref §2.3
)
rule(
    "IVL224",
    "duplicate-id",
    W,
    "The `id` was already used by an earlier record of the same file.",
    "The official trainer never reads `id`, but a repeated id usually means records were concatenated twice, "
    "so those samples train twice.",
    '{"id": 7, ...} twice',
    "Give each record a unique id (or remove repeated records).",
    consequence=C.NOTICE,  # ref §1.1 (id never read)
)
rule(
    "IVL225",
    "field-type",
    E,
    "A documented field has the wrong type (id, video, clip, width, height, width_list, height_list).",
    "A `video` that is not a string raises when the official loader joins it to `root`, and a malformed `clip` "
    "raises in the video reader (a clip whose end is not after its start gives a negative frame count): the "
    "sample is replaced by a random other one. The trainer never reads id, width, height, width_list or "
    "height_list; tools that normalise boxes or count tiles do.",
    '{"width": "640", ...}',
    "Use the types of schemas/record.schema.json (integers for sizes, [start, end] seconds with start < end for clip).",
    consequence=C.CRASH,  # ref §1.1, §1.7, §3.9
    cases=(
        Case(
            "the field is id, width, height, width_list or height_list (never read by the official trainer)",
            C.NOTICE,
            E,
            override="the record schema (schemas/record.schema.json) requires these types, and what the schema "
            "rejects is an error, so that ivl-data and the schema give one verdict",
        ),
    ),
)
rule(
    "IVL226",
    "empty-image",
    W,
    "`image` is an empty string or an empty list.",
    "The official loader treats an empty `image` as no image: the record trains as pure text.",
    '{"image": [], "conversations": [...]}',
    "Remove the key for text records or fill in the paths.",
    consequence=C.ALTERED,  # ref §1.2
)

# ---------------------------------------------------------------------------------------------- fast path

_MISSING = object()
_NUM = (int, float)
FIRST_VALUE = "$.conversations[0].value"
MSG_AUTO_INSERT = "no <image> placeholder: the loader prepends '<image>\\n' to the first turn"


def _pos_int(v: Any) -> bool:
    return type(v) is int and v > 0


def _id_ok(v: Any) -> bool:
    return type(v) is str or type(v) is int


def _int_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is int and x > 0 for x in v)


def _clip_ok(v: Any) -> bool:
    return type(v) is list and len(v) == 2 and type(v[0]) in _NUM and type(v[1]) in _NUM and 0 <= v[0] < v[1]


def _length_ok(v: Any) -> bool:
    return type(v) in _NUM and v >= 0


_FIELD_OK: dict[str, Callable[[Any], bool]] = {
    "id": _id_ok,
    "width": _pos_int,
    "height": _pos_int,
    "width_list": _int_list,
    "height_list": _int_list,
    "clip": _clip_ok,
    "length": _length_ok,
}


def _other_fields_ok(obj: dict[str, Any]) -> bool:
    for key, val in obj.items():
        field_ok = _FIELD_OK.get(key)
        if field_ok is not None and not field_ok(val):
            return False
    return True


def check_record(obj: dict[str, Any], ctx: Any) -> list[Finding]:
    """Every IVL2xx rule on one record (``ctx``: path, line, dataset, template). Clean records return []."""
    conv = obj.get("conversations")
    if type(conv) is not list or not conv:
        return _findings(obj, ctx)
    n_img = n_vid = f_img = f_vid = 0
    expect = "human"
    first = True
    for turn in conv:
        if type(turn) is not dict:
            return _findings(obj, ctx)
        value = turn.get("value")
        if turn.get("from") != expect or type(value) is not str or not value or value.isspace():
            return _findings(obj, ctx)
        if "<" in value:
            ni = value.count("<image>")
            nv = value.count("<video>")
            if value.count("<") != ni + nv:  # any other tag: control tokens, <ref>/<box>, a stray '<'
                return _findings(obj, ctx)
            n_img += ni
            n_vid += nv
            if first:
                f_img, f_vid = ni, nv
        expect = "gpt" if expect == "human" else "human"
        first = False
    if expect != "human":
        return _findings(obj, ctx)
    image = obj.get("image", _MISSING)
    video = obj.get("video")
    auto_insert = False  # a single image without placeholder: clean apart from IVL214
    if image is _MISSING:
        if video is None:
            ok = n_img == 0 and n_vid == 0
        else:
            ok = type(video) is str and n_vid == 1 == f_vid and n_img == 0 and "<video>\n" in conv[0]["value"]
    elif video is not None:
        ok = False
    elif type(image) is str:
        ok = n_vid == 0 and image != "" and (n_img == 1 == f_img or n_img == 0)
        auto_insert = n_img == 0
    elif type(image) is list:
        ok = n_img == len(image) and n_vid == 0 and n_img > 0 and all(type(p) is str for p in image)
    else:
        ok = False
    if not ok:
        return _findings(obj, ctx)
    known = 1 + (image is not _MISSING) + ("video" in obj)  # the common keys inline, the rest in a loop
    rid = obj.get("id")
    if rid is not None:
        if type(rid) is not int and type(rid) is not str:
            return _findings(obj, ctx)
        known += 1
    width, height = obj.get("width"), obj.get("height")
    if width is not None and height is not None:
        if type(width) is not int or type(height) is not int or width <= 0 or height <= 0:
            return _findings(obj, ctx)
        known += 2
    if len(obj) != known and not _other_fields_ok(obj):
        return _findings(obj, ctx)
    if auto_insert:
        return [
            emit(
                "IVL214",
                ctx.path,
                ctx.line,
                MSG_AUTO_INSERT,
                json_path=FIRST_VALUE,
                dataset=getattr(ctx, "dataset", ""),
            )
        ]
    return []


# ---------------------------------------------------------------------------------------------- slow path


class _Out(list):
    """Findings of one record, built with the record's location."""

    def __init__(self, ctx: Any) -> None:
        super().__init__()
        self.path = getattr(ctx, "path", "")
        self.line = getattr(ctx, "line", 0)
        self.dataset = getattr(ctx, "dataset", "")

    def add(self, code: str, message: str, json_path: str, severity: Severity | None = None) -> None:
        self.append(
            emit(code, self.path, self.line, message, json_path=json_path, dataset=self.dataset, severity=severity)
        )


def _int_like(v: Any) -> bool:
    """An integer as JSON Schema counts it (2 and 2.0; not true)."""
    return type(v) is int or (type(v) is float and v.is_integer())


def _type_name(v: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }.get(type(v), type(v).__name__)


def _findings(obj: dict[str, Any], ctx: Any) -> list[Finding]:
    out = _Out(ctx)
    _check_fields(obj, out)
    kind = _check_media_fields(obj, out)
    turns = _check_turns(obj, out, getattr(ctx, "template", None), kind)
    if kind is not None and turns:  # placeholder counts only mean something when every turn is well-formed
        _check_placeholders(obj, kind, turns, out)
    return out


def _check_fields(obj: dict[str, Any], out: _Out) -> None:
    if "id" in obj and not (type(obj["id"]) is str or _int_like(obj["id"])):
        out.add("IVL225", f"`id` is {_type_name(obj['id'])}; use a string or an integer", "$.id")
    for key in ("width", "height"):
        if key in obj and not (_int_like(obj[key]) and obj[key] >= 1):
            out.add("IVL225", f"`{key}` must be a positive integer (pixels), not {obj[key]!r}", f"$.{key}")
    for key in ("width_list", "height_list"):
        if key in obj:
            val = obj[key]
            if type(val) is not list:
                out.add("IVL225", f"`{key}` must be a list of positive integers, not {_type_name(val)}", f"$.{key}")
                continue
            for n, x in enumerate(val):
                if not (_int_like(x) and x >= 1):
                    out.add("IVL225", f"`{key}[{n}]` must be a positive integer, not {x!r}", f"$.{key}[{n}]")
                    break
    if "clip" in obj:
        clip = obj["clip"]
        if type(clip) is not list or len(clip) != 2 or any(type(x) not in _NUM for x in clip):
            out.add("IVL225", f"`clip` must be [start_seconds, end_seconds], not {clip!r}", "$.clip")
        elif not 0 <= clip[0] < clip[1]:
            out.add("IVL225", f"`clip` {clip!r} needs 0 <= start < end", "$.clip")
    if "video" in obj and obj["video"] is not None and type(obj["video"]) is not str:
        out.add("IVL225", f"`video` is {_type_name(obj['video'])}; use a path string", "$.video")
    if "length" in obj and not (type(obj["length"]) in _NUM and obj["length"] >= 0):
        out.add(
            "IVL223",
            f"per-line `length` is {obj['length']!r}; it must be a non-negative number "
            "(a string crashes group_by_length)",
            "$.length",
        )


def _check_media_fields(obj: dict[str, Any], out: _Out) -> str | None:
    """IVL204/205/206/226; returns the record kind, or None when ``image`` is unusable."""
    video = obj.get("video")
    has_video = type(video) is str and video != ""
    if "image" not in obj:
        return "video" if has_video else "text"
    image = obj["image"]
    if image is None:
        out.add("IVL204", "`image` is null: the official loader crashes its worker on it", "$.image")
        return None
    if type(image) is str or type(image) is list:
        if not image:
            out.add(
                "IVL226",
                f"`image` is {'an empty list' if image == [] else 'an empty string'}: the record "
                "is trained as pure text",
                "$.image",
            )
            return "video" if has_video else "text"
        if type(image) is list:
            bad = [n for n, p in enumerate(image) if type(p) is not str]
            for n in bad:
                out.add(
                    "IVL205",
                    f"`image[{n}]` is {_type_name(image[n])}; every element must be a path string",
                    f"$.image[{n}]",
                )
            if bad:
                return None
        if has_video:
            out.add(
                "IVL206",
                "record has both `image` and `video`: the loader uses the image and ignores the video",
                "$.video",
            )
        return "multi" if type(image) is list else "single"
    out.add("IVL205", f"`image` is {_type_name(image)}; use a path string or a list of path strings", "$.image")
    return None


def _foreign(obj: dict[str, Any]) -> str:
    """The hint naming ``ivl-data import`` for a record in another tool's format ("" otherwise)."""
    from internvl_data.importers.detect import hint

    return hint(obj)


def _check_turns(obj: dict[str, Any], out: _Out, template: str | None, kind: str | None) -> list[tuple[int, str, str]]:
    """Shape, roles, alternation, values. Returns the turns as (index, role, value); [] unless all are
    well-formed. ``kind``: the record kind (text, single, multi, video; None when ``image`` is unusable)."""
    conv = obj.get("conversations", _MISSING)
    if conv is _MISSING:
        out.add("IVL201", "`conversations` is missing" + _foreign(obj), "$.conversations")
        return []
    if type(conv) is not list or not conv:
        what = "an empty list" if conv == [] else _type_name(conv)
        out.add("IVL201", f"`conversations` is {what}; it must be a non-empty list of turns", "$.conversations")
        return []
    turns: list[tuple[int, str, str]] = []
    for n, turn in enumerate(conv):
        jp = f"$.conversations[{n}]"
        if type(turn) is not dict:
            out.add("IVL202", f"turn {n} is {_type_name(turn)}, not an object with `from` and `value`", jp)
            continue
        role, value = turn.get("from", _MISSING), turn.get("value", _MISSING)
        if role is _MISSING or type(role) is not str:
            what = "no `from`" if role is _MISSING else "a non-string `from`"
            out.add("IVL202", f"turn {n} has {what}" + (_foreign(obj) if n == 0 else ""), f"{jp}.from")
        if value is _MISSING and "text" in turn:
            out.add("IVL203", f"turn {n} uses `text` instead of `value`: the trainer raises KeyError", f"{jp}.text")
        elif value is _MISSING or type(value) is not str:
            what = "no `value`" if value is _MISSING else f"a `value` that is {_type_name(value)}"
            out.add("IVL202", f"turn {n} has {what}; it must be a string", f"{jp}.value")
        if type(role) is str and type(value) is str:
            turns.append((n, role, value))
            _check_value(n, value, out, template)
    if len(turns) != len(conv):
        return []
    _check_roles(turns, out, template, kind, len(obj["image"]) if kind == "multi" else 1)
    return turns


def _check_value(n: int, value: str, out: _Out, template: str | None) -> None:
    jp = f"$.conversations[{n}].value"
    if not value or value.isspace():
        stripped = template in TEMPLATES and TEMPLATES[template].strip_values  # internlm2-chat: empty after strip
        out.add(
            "IVL211",
            f"turn {n} has an {'empty' if not value else 'whitespace-only'} value"
            + (f" ({template} strips it to empty)" if value and stripped else ""),
            jp,
            severity=None if not value or stripped else W,
        )
    if "<" not in value:
        return
    found = [t for t in CONTROL_TOKENS if t in value]
    if found:
        out.add("IVL213", f"turn {n} contains special token(s) {', '.join(found)}", jp)
    if any(t in value for t in GROUNDING_TAGS):
        for code, message in grounding_problems(value):
            out.add(code, f"turn {n}: {message}", jp)


def _check_roles(
    turns: list[tuple[int, str, str]], out: _Out, template: str | None, kind: str | None, n_images: int
) -> None:
    roles = [r for _, r, _ in turns]
    unknown = [(n, r) for n, r, _ in turns if r not in ("human", "gpt", "system")]
    for n, r in unknown:
        out.add("IVL207", f"turn {n} has role {r!r}; use 'human' or 'gpt'", f"$.conversations[{n}].from")
    for n, r, _ in turns:
        if r != "system":
            continue
        jp = f"$.conversations[{n}].from"
        if n != 0:
            out.add("IVL208", f"turn {n} is a system turn; only the first turn may be `system`", jp, severity=E)
        elif template in TEMPLATES and not TEMPLATES[template].system_turn:
            out.add(
                "IVL208", f"template {template} has no per-sample system prompt: the sample is dropped", jp, severity=E
            )
        elif template not in TEMPLATES:
            out.add(
                "IVL208",
                "a `system` turn is only valid with the internvl2_5 template (the InternVL2 "
                "templates drop the sample); pass --template to decide",
                jp,
            )
    if unknown:
        return
    body = turns[1:] if roles[0] == "system" else turns
    if roles[-1] != "gpt":
        n = turns[-1][0]
        out.add("IVL212", f"the last turn ({n}) is {roles[-1]!r}, not 'gpt'", f"$.conversations[{n}].from")
    if (template in TEMPLATES and TEMPLATES[template].block_labels) or not body:
        return
    if body[0][1] == "gpt":
        lost = _dropped_media(kind, body, n_images)
        out.add(
            "IVL210",
            f"turn {body[0][0]} is a gpt turn before any question: the loader drops it" + lost,
            f"$.conversations[{body[0][0]}].from",
            severity=E if lost else None,
        )
        body = body[1:]
    for k, (n, r, _) in enumerate(body):
        want = "human" if k % 2 == 0 else "gpt"
        if r != want:
            out.add(
                "IVL209",
                f"turn {n} is {r!r} where {want!r} was expected (roles must alternate human, gpt)",
                f"$.conversations[{n}].from",
            )
            return


def _dropped_media(kind: str | None, body: list[tuple[int, str, str]], n_images: int) -> str:
    """What a record loses with its dropped leading gpt turn (IVL210), as a message tail ("" when nothing).

    The loader puts the automatic ``"<image>\\n"`` (single image) and the video frames into conversations[0] before
    the preprocessor drops that turn (docs/official-behaviour.md §1.5, §1.7, §4.3)."""
    if body[0][0] != 0:  # a system turn comes first: left to IVL208
        return ""
    later = sum(v.count("<image>") for _, _, v in body[1:])
    if kind == "video":
        return ", and with it the video frames: the micro-batch's loss is zeroed"
    if kind == "single" and later == 0:
        return ", and with it the image placeholder: the sample fails the </img> count assertion and is dropped"
    if kind == "multi" and later < n_images:
        return (
            f", leaving {later} <image> placeholder(s) for {n_images} images: the sample fails the </img> count "
            "assertion and is dropped"
        )
    return ""


def _check_placeholders(obj: dict[str, Any], kind: str, turns: list[tuple[int, str, str]], out: _Out) -> None:
    n_img = sum(v.count("<image>") for _, _, v in turns)
    n_vid = sum(v.count("<video>") for _, _, v in turns)
    first = turns[0][2] if turns and turns[0][0] == 0 else ""
    jp0 = FIRST_VALUE
    if kind == "single":
        if n_img == 0:
            out.add("IVL214", MSG_AUTO_INSERT, jp0)
        elif "<image>" not in first:
            out.add(
                "IVL215",
                "<image> is not in the first turn: the loader prepends another one there and the "
                "later placeholder stays plain text",
                jp0,
            )
        elif n_img > 1:
            out.add("IVL216", f"{n_img} <image> placeholders for 1 image: the extra ones stay literal text", jp0)
    elif kind == "multi":
        n = len(obj["image"])
        if n_img < n:
            out.add(
                "IVL217",
                f"{n_img} <image> placeholder(s) for {n} images: the sample fails the </img> count "
                "assertion and is dropped",
                "$.conversations",
            )
        elif n_img > n:
            out.add(
                "IVL216",
                f"{n_img} <image> placeholders for {n} images: the extra ones stay literal text",
                "$.conversations",
            )
    elif kind == "video":
        if n_vid > 1:
            framed = "<video>\n" in first or "<video>" not in first  # the frames still go into the first turn
            out.add(
                "IVL219",
                f"<video> appears {n_vid} times; it must appear exactly once"
                + (" (the frames go into the first turn; the others stay literal text)" if framed else ""),
                "$.conversations",
                severity=W if framed else None,
            )
        elif "<video>" not in first:
            where = "in a later turn (it stays plain text)" if n_vid else "anywhere"
            out.add("IVL218", f"no <video> in the first turn ({where}): the loader prepends '<video>\\n'", jp0)
        elif "<video>\n" not in first:
            out.add(
                "IVL219",
                "<video> is not followed by a newline: the frames are never inserted and the "
                "micro-batch loss is zeroed",
                jp0,
            )
    if kind != "video" and n_vid:
        out.add("IVL220", f"<video> in a {kind} record stays plain text", "$.conversations")
    if kind in ("text", "video") and n_img:
        what = "a text record (it stays plain text)" if kind == "text" else "a video record (it steals a frame slot)"
        out.add("IVL220", f"<image> in {what}", "$.conversations")


# ---------------------------------------------------------------------------------------------- grounding

_BOX_SPAN = re.compile(r"<box>(.*?)</box>", re.S)
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_ONE_BOX = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
_BOX_LIST = re.compile(r"\s*\[\s*" + _ONE_BOX.pattern + r"(?:\s*,\s*" + _ONE_BOX.pattern + r")*\s*\]\s*")


def grounding_problems(value: str) -> list[tuple[str, str]]:
    """IVL221/IVL222 problems of one value as (code, message)."""
    problems: list[tuple[str, str]] = []
    for open_tag, close_tag in (("<ref>", "</ref>"), ("<box>", "</box>")):
        if value.count(open_tag) != value.count(close_tag):
            problems.append(("IVL221", f"{value.count(open_tag)} {open_tag} but {value.count(close_tag)} {close_tag}"))
    for m in _BOX_SPAN.finditer(value):
        body = m.group(1)
        if not _BOX_LIST.fullmatch(body):
            problems.append(("IVL221", f"box {body!r} is not [[x1, y1, x2, y2], ...]"))
            continue
        for box in _ONE_BOX.finditer(body):
            x1, y1, x2, y2 = (float(v) for v in box.groups())
            if not all(v.is_integer() and 0 <= v <= 1000 for v in (x1, y1, x2, y2)):
                problems.append(("IVL222", f"box {box.group(0)} has coordinates outside the integers 0..1000"))
            elif x1 > x2 or y1 > y2:
                problems.append(("IVL222", f"box {box.group(0)} has x1 > x2 or y1 > y2"))
    return problems
