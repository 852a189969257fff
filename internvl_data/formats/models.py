"""Pydantic v2 models: the single source of truth for the meta file and the JSONL record formats.

``schemas/*.schema.json`` are generated from these models (``ivl-data schema --write``). Validation of
records at scale does not run pydantic: ``checks_records`` is a hand-written fast path that a test keeps in
agreement with :func:`internvl_data.formats.schema.record_schema`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, StrictFloat, StrictInt, StrictStr

PositiveInt = Annotated[StrictInt, Field(ge=1)]


class DatasetEntry(BaseModel):
    """One dataset of the meta file (the value under a dataset name)."""

    model_config = ConfigDict(extra="allow", title="DatasetEntry")

    root: StrictStr = Field(
        description="Folder that image and video paths are relative to (os.path.join(root, path); "
        "plain concatenation for s3:// roots). Relative roots resolve against the meta file's folder first."
    )
    annotation: StrictStr = Field(
        pattern=r"jsonl$",
        description="Path of the JSONL annotation file; the official loader asserts that it ends in 'jsonl'.",
    )
    data_augment: StrictBool = Field(
        description="true: random JPEG re-compression (quality 75-100) per tile during training; false: none."
    )
    repeat_time: Annotated[StrictInt, Field(gt=0)] | Annotated[StrictFloat, Field(gt=0)] = Field(
        description="Above 1 it must be an integer (the line list is repeated); below 1 the loader keeps the "
        "FIRST floor(lines * repeat_time) lines, not a random subset.",
    )
    length: StrictInt = Field(
        default=None,
        ge=0,
        description="Number of lines in the annotation file. Informational only: the loader never reads it.",
    )
    max_dynamic_patch: StrictInt = Field(
        default=None,
        ge=1,
        description="Per-dataset override of the --max_dynamic_patch tile budget (1..40 in practice).",
    )


class Meta(RootModel[dict[str, DatasetEntry]]):
    """The meta file: an object mapping dataset names to dataset entries, in training order."""

    model_config = ConfigDict(title="Meta")


class Turn(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="allow", title="Turn", populate_by_name=True)

    from_: Literal["human", "gpt", "system"] = Field(
        alias="from",
        description="Speaker: 'human' or 'gpt', strictly alternating; 'system' only as the first turn and "
        "only with the internvl2_5 template.",
    )
    value: StrictStr = Field(
        min_length=1,
        description="Message text (the key is 'value', not 'text'); non-empty, free of template control "
        "tokens. <image> / <video> placeholders mark where media goes.",
    )


class Record(BaseModel):
    """One JSONL line: pure text, single image, multi-image or video."""

    model_config = ConfigDict(extra="allow", title="Record")

    id: StrictStr | StrictInt = Field(
        default=None, description="Record identifier (documented, never read by the trainer); unique per file."
    )
    conversations: list[Turn] = Field(
        min_length=1, description="The dialogue: human/gpt turns starting with human and ending with gpt."
    )
    image: StrictStr | list[StrictStr] = Field(
        default=None,
        description="A path (single image) or a list of paths (multi-image), relative to the dataset root. "
        "Absent for text and video records; never null.",
    )
    video: StrictStr | None = Field(
        default=None, description="Path of a video relative to the dataset root (ignored when image is set)."
    )
    clip: Annotated[list[StrictFloat], Field(min_length=2, max_length=2)] = Field(
        default=None, description="[start_seconds, end_seconds] window of the video to sample frames from."
    )
    width: PositiveInt = Field(default=None, description="Width in pixels of the single image (not read).")
    height: PositiveInt = Field(default=None, description="Height in pixels of the single image (not read).")
    width_list: list[PositiveInt] = Field(
        default=None, description="Widths of the images of a multi-image record, in list order (not read)."
    )
    height_list: list[PositiveInt] = Field(
        default=None, description="Heights of the images of a multi-image record, in list order (not read)."
    )
    length: StrictFloat = Field(
        default=None,
        ge=0,
        description="Token-length hint used by group_by_length; must be a number (a string crashes the sampler).",
    )


def record_kind(obj: dict[str, Any]) -> str:
    """The sample type the official loader dispatches on: 'single', 'multi', 'video' or 'text'.

    Order as in the loader: a non-empty ``image`` wins (list -> multi), then a non-empty ``video``.
    """
    image = obj.get("image")
    if image:
        return "multi" if type(image) is list else "single"
    video = obj.get("video")
    if video:
        return "video"
    return "text"


def declared_size(obj: dict[str, Any], index: int | None) -> tuple[int | None, int | None, str, str] | None:
    """The size a record declares for one of its images: ``(width, height, width key, height key)``, or None when
    it declares neither. ``index`` None: the single image (``width``/``height``); else image ``index`` of a
    multi-image record (``width_list[index]``/``height_list[index]``). A value that is not an int (bools
    included) is None. The one reader of declared sizes (IVL308 compares them, stats falls back on them)."""
    if index is None:
        if "width" not in obj and "height" not in obj:
            return None
        w, h, wk, hk = obj.get("width"), obj.get("height"), "width", "height"
    else:
        wl, hl = obj.get("width_list"), obj.get("height_list")
        w = wl[index] if isinstance(wl, list) and 0 <= index < len(wl) else None
        h = hl[index] if isinstance(hl, list) and 0 <= index < len(hl) else None
        wk, hk = f"width_list[{index}]", f"height_list[{index}]"
    w = w if type(w) is int else None
    h = h if type(h) is int else None
    return None if w is None and h is None else (w, h, wk, hk)
