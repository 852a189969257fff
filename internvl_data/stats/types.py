"""The plain data of ``stats`` and ``lengths``: datasets, settings, work chunks and records waiting for token
counts (the worker, the token counter and validate's media and token checks all use these; only the tiling
default is imported)."""

from __future__ import annotations

from dataclasses import dataclass, field

from internvl_data.pipeline.tiling import DEFAULT_MAX_DYNAMIC_PATCH


@dataclass(frozen=True)
class Dataset:
    """What a worker needs to know about one dataset of the meta file."""

    name: str
    annotation: str
    root: str
    max_dynamic_patch: int | None = None


@dataclass(frozen=True)
class Settings:
    """Tiling and token settings (defaults: the official InternVL2 scripts; a model overrides them)."""

    tile: int = 448
    min_dynamic_patch: int = 1
    max_dynamic_patch: int = DEFAULT_MAX_DYNAMIC_PATCH
    use_thumbnail: bool = True
    dynamic_image_size: bool = True
    model_dir: str | None = None
    max_seq_length: int = 4096
    num_frames: int = 32  # frames counted per video record (the trainer draws between min and max)
    min_num_frame: int = 8  # the fewest frames the trainer draws (IVL405)
    template: str | None = None
    trust_remote_code: bool = False
    cache_dir: str | None = None


@dataclass
class Chunk:
    """One unit of work: bytes ``[start, end)`` of dataset ``index``; ``first_lineno`` 0 when not counted."""

    index: int
    start: int
    end: int
    first_lineno: int = 1

    def size(self) -> int:
        return self.end - self.start


@dataclass
class Record:
    """A parsed record with its media facts, waiting for token counts."""

    obj: dict
    kind: str
    tiles: list[int] = field(default_factory=list)  # per image (per frame for video: 1 each)
    offset: int = -1  # byte offset of its line in the annotation (the line number is found only when reported)
