"""`ValidateOptions`: every `ivl-data validate` flag as one frozen value (the CLI only fills it in)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

from internvl_data.errors import UsageError
from internvl_data.media.probe import MAX_PIXELS
from internvl_data.parallel import show_progress  # noqa: F401  (its old place: internvl_data.options.show_progress)

MEDIA_MODES = ("off", "exists", "header", "decode")
FORMATS = ("text", "json", "github", "sarif")

# Lower bound of each numeric option (``None`` is allowed where the default is None). The CLI flag of an option is
# its name with dashes: --max-per-rule.
LIMITS = {
    "max_pixels": 0,
    "min_frames": 0,
    "max_per_rule": 0,
    "jobs": 0,
    "max_seq_length": 1,
    "long_line": 0,
    "slow_record": 0,
}

# Fields that cannot change what the checks find; every other field is part of the cache key.
_NOT_IN_KEY = frozenset({"strict", "jobs", "cache_dir", "manifest", "write_manifest", "format", "output", "progress"})


class OptionError(UsageError, ValueError):
    """An option below its bound in :data:`LIMITS`; ``name``, ``bound`` and ``value`` say which."""

    def __init__(self, name: str, bound: int, value: object) -> None:
        self.name, self.bound, self.value = name, bound, value
        super().__init__(f"{name} must be >= {bound}, not {self.shown!r}")

    @property
    def shown(self) -> object:
        """The value as the user typed it: ``--slow-record -1`` is -1, not -1.0."""
        value = self.value
        return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True)
class ValidateOptions:
    """The options of one validation run (keyword names match ``internvl_data.validate(meta, **options)``)."""

    media: str = "header"  # off | exists | header | decode
    allow_outside_root: bool = False  # media paths may escape the dataset root
    max_pixels: int = MAX_PIXELS  # the one pixel limit (media.probe.MAX_PIXELS, Pillow's default warning limit)
    min_frames: int = 1  # videos with fewer decodable frames are reported
    select: tuple[str, ...] = ()  # codes or prefixes to keep (empty: all)
    ignore: tuple[str, ...] = ()  # codes or prefixes to drop
    max_per_rule: int | None = None  # keep the first N findings of each code, count the rest
    strict: bool = False  # warnings count as errors
    jobs: int = 0  # worker processes; 0 = all cores
    cache_dir: str | None = None  # per-annotation result cache
    manifest: str | None = None  # manifest path; None = `<meta stem>.ivl-manifest.json` beside the meta file
    write_manifest: bool = False  # the library writes nothing unasked; the CLI asks (unless --no-manifest)
    format: str = "text"  # text | json | github | sarif
    output: str | None = None  # write the report here (atomically) instead of stdout
    template: str | None = None  # chat template name: decides whether a `system` turn is allowed
    model_dir: str | None = None  # checkpoint folder for the token-budget rules (IVL4xx)
    max_seq_length: int = 4096  # with model_dir: the trainer's --max_seq_length (4096 in the official scripts)
    trust_remote_code: bool = False  # with model_dir: allow the checkpoint's own tokenizer code
    long_line: int = 1 << 20  # bytes; longer lines are reported (IVL0xx)
    slow_record: float = 10.0  # seconds; records whose checks take longer are reported (IVL009); 0: off
    progress: bool | None = None  # None: a bar only on a terminal outside CI

    def __post_init__(self) -> None:
        if self.media not in MEDIA_MODES:
            raise ValueError(f"media must be one of {', '.join(MEDIA_MODES)}, not {self.media!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        for name, bound in LIMITS.items():
            value = getattr(self, name)
            if value is not None and value < bound:
                raise OptionError(name, bound, value)
        for name in ("select", "ignore"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(p for p in value.split(",") if p))
            else:
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_kwargs(cls, **options: object) -> ValidateOptions:
        """Build from keyword options; an unknown name is a usage error naming the valid ones."""
        _known(cls, options)
        return cls(**options)  # type: ignore[arg-type]

    def updated(self, **options: object) -> ValidateOptions:
        """A copy with keyword options applied on top (checked as in :meth:`from_kwargs`)."""
        _known(type(self), options)
        return replace(self, **options)  # type: ignore[arg-type]

    @property
    def workers(self) -> int:
        return self.jobs or os.cpu_count() or 1

    def key_fields(self) -> dict[str, object]:
        """The options that can change findings (cache key and manifest)."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_IN_KEY}


def _known(cls: type, options: dict[str, object]) -> None:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
