"""``messages`` records (ms-swift, LLaMA-Factory's ``messages`` layout, OpenAI chat): ``role``/``content`` turns
where content is a string with ``<image>``/``<video>`` placeholders (media in ``images``/``videos``) or a list of
blocks: ``{"type": "text", "text": ...}``, ``{"type": "image", "image": PATH}``,
``{"type": "image_url", "image_url": {"url": PATH}}`` and ``{"type": "video", "video": PATH}``; a block becomes
a placeholder where it stands."""

from __future__ import annotations

from typing import Any

from internvl_data.importers import IMAGE, VIDEO, Context, ConversionError, build, media_list


def convert(record: dict, ctx: Context) -> dict:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConversionError("no `messages` list of turns")
    images, videos = media_list(record, "images"), media_list(record, "videos")
    pairs = []
    for n, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ConversionError(f"message {n} needs a string `role`")
        if msg["role"] in ("tool", "function"):
            raise ConversionError(f"message {n} is a {msg['role']!r} message; tool calls have no InternVL equivalent")
        pairs.append((msg["role"], _content(msg.get("content"), n, images, videos)))
    return build(record, pairs, images, videos, ctx)


def _content(content: Any, n: int, images: list, videos: list) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ConversionError(f"message {n}: `content` must be a string or a list of blocks")
    parts = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind in ("image", "image_url"):
            src = block.get(kind)
            images.append(src.get("url") if isinstance(src, dict) else src)
            parts.append(IMAGE + "\n")
        elif kind in ("video", "video_url"):
            src = block.get(kind)
            videos.append(src.get("url") if isinstance(src, dict) else src)
            parts.append(VIDEO + "\n")
        else:
            raise ConversionError(f"message {n}: content block {block!r} is not text, image or video")
    return "".join(parts)
