"""IVL1xx: checks on the meta file and its dataset entries (on the raw parsed values, not on pydantic)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from internvl_data.checks.catalogue import Consequence, emit, rule
from internvl_data.checks.findings import Finding, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741 (short names for the rule table)
C = Consequence
REQUIRED = ("root", "annotation", "data_augment", "repeat_time")
KNOWN = (*REQUIRED, "length", "max_dynamic_patch")
MAX_DYNAMIC_PATCH_SANE = 40

# Keys other tools and older docs use, with what the official loader wants instead.
DIALECT_HINTS = {
    **dict.fromkeys(
        ("media_root", "image_root", "images_root", "image_folder", "image_dir", "data_root", "video_root"),
        "the official loader reads the media folder from `root`",
    ),
    **dict.fromkeys(
        ("ann_path", "annotation_path", "ann_file", "data_path", "json_path", "jsonl", "file"),
        "the official loader reads the JSONL path from `annotation`",
    ),
    **dict.fromkeys(
        ("repeat", "repeat_times", "weight", "sampling_ratio", "ratio"), "the official loader reads `repeat_time`"
    ),
    **dict.fromkeys(("augment", "data_augmentation", "augmentation"), "the official loader reads `data_augment`"),
    **dict.fromkeys(
        ("min_dynamic_patch", "min_num_frame", "max_num_frame", "sampling_method", "max_seq_length"),
        "this is a command-line argument of the official trainer, not a per-dataset key",
    ),
    **dict.fromkeys(("num_samples", "size", "count", "n"), "the meta key for the line count is `length`"),
}

rule(
    "IVL101",
    "meta-unreadable",
    E,
    "The meta file cannot be read or is not valid JSON.",
    "The official trainer parses the meta file at start-up and stops on the first error.",
    '{"my_data": {"root": "data/", }',
    "Fix the JSON at the reported line and column.",
    consequence=C.CRASH,  # ref §2, §6.5
)
rule(
    "IVL102",
    "meta-not-object",
    E,
    "The meta file is not an object of objects (dataset name -> settings).",
    "The official trainer iterates `meta.items()` and indexes each value by key: anything else raises at "
    "start-up and the run stops.",
    '[{"root": "data/", "annotation": "a.jsonl"}]',
    'Write {"dataset_name": {"root": ..., "annotation": ..., "data_augment": false, "repeat_time": 1}}.',
    consequence=C.CRASH,  # ref §2.1
)
rule(
    "IVL103",
    "duplicate-dataset-name",
    E,
    "Two datasets have the same name (a repeated JSON key).",
    "JSON parsers keep the last one silently: the official trainer never sees the first dataset, and none of its "
    "records trains, without a message.",
    '{"coco": {...}, "coco": {...}}',
    "Rename one of the datasets.",
    consequence=C.ALTERED,  # ref §2.1 (dataset names are the JSON keys), §10.1 rejects duplicate names
    override="a whole dataset silently left out of the mixture drops every one of its samples, which the "
    "validator rejects like a crash (the InternVL2 reference's checklist, §10.1, rejects duplicate dataset names)",
)
rule(
    "IVL104",
    "missing-meta-key",
    E,
    "A dataset lacks root, annotation, data_augment or repeat_time.",
    "The official trainer reads these four keys unconditionally: a missing one raises KeyError at start-up and "
    "the run stops.",
    '{"coco": {"root": "data/", "annotation": "coco.jsonl"}}',
    "Add the missing key.",
    consequence=C.CRASH,  # ref §2.1
)
rule(
    "IVL105",
    "meta-value-type",
    E,
    "root/annotation is not a string, or data_augment is not true/false.",
    "A root or annotation that is not a string raises at start-up (the official trainer joins paths to it and "
    "checks its suffix), and ivl-train refuses a data_augment that is not true/false; the official loader would "
    'take a string such as "false" as true and switch augmentation ON.',
    '{"data_augment": "false"}',
    "Use a JSON string for paths and true/false for data_augment.",
    consequence=C.CRASH,  # ref §2.1 (root joined with os.path.join, annotation.endswith), §3.5
)
rule(
    "IVL106",
    "annotation-not-jsonl",
    E,
    "The annotation path does not end in `jsonl`.",
    "The official trainer asserts annotation.endswith('jsonl') at start-up: the run stops.",
    '{"annotation": "data/train.json"}',
    "Convert the file to JSON Lines and name it *.jsonl.",
    consequence=C.CRASH,  # ref §1.1, §2.1
)
rule(
    "IVL107",
    "annotation-not-found",
    E,
    "The annotation file does not exist.",
    "The official trainer opens it at start-up, so the run stops. Relative paths are tried against the meta "
    "file's folder, then the current directory.",
    '{"annotation": "missing.jsonl"}',
    "Fix the path (relative to the meta file).",
    consequence=C.CRASH,  # ref §1.1 (readlines at construction), §2.1
)
rule(
    "IVL108",
    "root-not-found",
    W,
    "The media root folder does not exist.",
    "Harmless for a pure-text dataset. Otherwise every image or video of the dataset is missing: each such "
    "record is reported as IVL301 (an error), and the official loader, failing its replacement draws in a row, "
    "ends the epoch early.",
    '{"root": "/data/coco/"}',
    "Fix `root` (relative to the meta file), or ignore for text-only data.",
    consequence=C.NOTICE,  # ref §3.2 (11 failed draws end the epoch); the records themselves are IVL301
)
rule(
    "IVL109",
    "repeat-time-invalid",
    E,
    "repeat_time is not a number, is <= 0, or is > 1 and not an integer.",
    "Above 1 the official loader asserts isinstance(repeat_time, int), so 2.0 and 2.5 stop the run at start-up; "
    "0 empties the dataset and negative values slice lines from the end.",
    '{"repeat_time": 2.0}',
    "Use a positive integer to repeat (2, not 2.0), or a fraction below 1 to subsample.",
    consequence=C.CRASH,  # ref §2.2
)
rule(
    "IVL110",
    "repeat-time-below-one",
    W,
    "repeat_time is below 1.",
    "The official loader keeps the FIRST floor(lines * repeat_time) lines, not a random subset: the rest of the "
    "file never trains, and the sort order decides which records do.",
    '{"repeat_time": 0.5}',
    "Shuffle the JSONL file first if you want a random subset.",
    consequence=C.ALTERED,  # ref §2.2
)
rule(
    "IVL111",
    "length-mismatch",
    W,
    "`length` differs from the real number of lines.",
    "The official trainer never reads the meta `length`, so training is unchanged; but tools and people do, and "
    "a count that differs from the file often means a truncated or appended file.",
    '{"length": 1000} for a 998-line file',
    "Set `length` to the line count (`wc -l`).",
    consequence=C.NOTICE,  # ref §2.3 (meta length: purely informational)
)
rule(
    "IVL112",
    "length-not-integer",
    W,
    "`length` is not an integer (for example a string).",
    "The official trainer never reads the meta `length`, so training is unchanged, but the wrong type misleads "
    "readers and tools.",
    '{"length": "1000"}',
    "Write the line count as a number.",
    consequence=C.NOTICE,  # ref §2.3
)
rule(
    "IVL113",
    "length-missing",
    I,
    "The dataset has no `length`.",
    "Optional and never read by the official trainer; documenting the line count helps to notice truncated files.",
    '{"root": ..., "annotation": ...}',
    'Add "length": <number of lines>.',
    consequence=C.NOTICE,  # ref §2.3
)
rule(
    "IVL114",
    "max-dynamic-patch-invalid",
    E,
    "max_dynamic_patch is not a positive integer.",
    "It is the tile budget the official loader passes to the tiling code: a float or string raises there for "
    "every image record of the dataset (range() needs an integer); 0 or less silently gives every image a "
    "single tile.",
    '{"max_dynamic_patch": "6"}',
    "Use an integer from 1 to 40 (12 in the InternVL2 scripts).",
    consequence=C.CRASH,  # ref §2.1, §3.4 (min_num > max_num: the 1x1 grid)
)
rule(
    "IVL115",
    "max-dynamic-patch-large",
    W,
    "max_dynamic_patch is above 40.",
    "The official loader accepts it, but each tile costs 256 tokens: with such a budget large images overflow "
    "max_seq_length and cut answers (the IVL4xx rules report the records concerned).",
    '{"max_dynamic_patch": 64}',
    "Use at most 40 (6 or 12 is usual).",
    consequence=C.NOTICE,  # ref §3.4, §3.6; the records' consequences are IVL401/IVL402
)
rule(
    "IVL116",
    "unknown-meta-key",
    W,
    "A dataset has a key the official loader ignores.",
    "The official trainer reads only root, annotation, data_augment, repeat_time and max_dynamic_patch: keys "
    "from other tools (media_root, ann_path, min_dynamic_patch ...) are silently ignored, so the setting you "
    "meant has no effect.",
    '{"media_root": "images/"}',
    "Rename or remove it (see the hint).",
    consequence=C.NOTICE,  # ref §2.1
)
rule(
    "IVL117",
    "duplicate-meta-key",
    W,
    "A dataset repeats a key.",
    "JSON parsers keep the last value silently: the official trainer uses that value and the other one has no effect.",
    '{"root": "a/", "root": "b/"}',
    "Keep one of the keys.",
    consequence=C.ALTERED,  # ref §2.1
)


def check_entry(name: str, raw: dict[str, Any], meta_path: str, line_of: Callable[[str], int]) -> list[Finding]:
    """Every IVL1xx rule on one dataset entry's raw values (``line_of(key)`` gives the key's line)."""
    out: list[Finding] = []

    def add(code: str, key: str, message: str, severity: Severity | None = None, hint: str = "") -> None:
        out.append(
            emit(
                code,
                meta_path,
                line_of(key),
                f"dataset {name!r}: {message}",
                json_path=f"$.{name}.{key}" if key else f"$.{name}",
                dataset=name,
                severity=severity,
                hint=hint,
            )
        )

    for key in REQUIRED:
        if key not in raw:
            near = [k for k, v in DIALECT_HINTS.items() if k in raw and key in v]
            extra = f" (found {near[0]!r}: rename it)" if near else ""
            add("IVL104", "", f"missing required key {key!r}{extra}")
    for key in ("root", "annotation"):
        if key in raw and type(raw[key]) is not str:
            add("IVL105", key, f"{key!r} must be a string path, not {raw[key]!r}")
    if "data_augment" in raw and type(raw["data_augment"]) is not bool:
        add("IVL105", "data_augment", f"'data_augment' must be true or false, not {raw['data_augment']!r}")
    ann = raw.get("annotation")
    if type(ann) is str and not ann.endswith("jsonl"):
        add("IVL106", "annotation", f"annotation {ann!r} does not end in 'jsonl'")
    if "repeat_time" in raw:
        _check_repeat_time(raw["repeat_time"], add)
    if "length" not in raw:
        add("IVL113", "", "no 'length' (line count)")
    elif type(raw["length"]) is not int or raw["length"] < 0:
        add("IVL112", "length", f"'length' is {raw['length']!r}, not a line count")
    if "max_dynamic_patch" in raw:
        mdp = raw["max_dynamic_patch"]
        if type(mdp) is not int or mdp < 1:
            add("IVL114", "max_dynamic_patch", f"'max_dynamic_patch' is {mdp!r}, not a positive integer")
        elif mdp > MAX_DYNAMIC_PATCH_SANE:
            add("IVL115", "max_dynamic_patch", f"'max_dynamic_patch' is {mdp} (> {MAX_DYNAMIC_PATCH_SANE})")
    for key in raw:
        if key not in KNOWN:
            hint = DIALECT_HINTS.get(key, "the official loader ignores it")
            add("IVL116", key, f"unknown key {key!r}: {hint}", hint=f"Remove or rename {key!r}: {hint}.")
    return out


def _check_repeat_time(value: Any, add: Callable[..., None]) -> None:
    key = "repeat_time"
    if type(value) not in (int, float) or not math.isfinite(value):
        add("IVL109", key, f"'repeat_time' is {value!r}, not a number")
    elif value <= 0:
        add("IVL109", key, f"'repeat_time' is {value}; it must be above 0")
    elif value > 1 and type(value) is not int:
        add(
            "IVL109",
            key,
            f"'repeat_time' is {value!r}: above 1 the official loader requires an integer "
            f"(JSON {value!r} is a float and fails its assertion)",
        )
    elif value < 1:
        add(
            "IVL110",
            key,
            f"'repeat_time' is {value}: the loader keeps the first {value:.0%} of the lines "
            "(floor(lines * repeat_time)), not a random subset",
        )


def check_paths(
    name: str, raw: dict[str, Any], annotation: str, root: str, meta_path: str, line_of: Callable[[str], int]
) -> list[Finding]:
    """IVL107/IVL108 on the resolved paths ("": the key is missing or unusable)."""
    out: list[Finding] = []
    if annotation and not os.path.isfile(annotation):
        out.append(
            emit(
                "IVL107",
                meta_path,
                line_of("annotation"),
                f"dataset {name!r}: annotation file {raw['annotation']!r} not found (looked for {annotation})",
                json_path=f"$.{name}.annotation",
                dataset=name,
            )
        )
    if root and not root.startswith("s3://") and not os.path.isdir(root):
        out.append(
            emit(
                "IVL108",
                meta_path,
                line_of("root"),
                f"dataset {name!r}: root folder {raw['root']!r} not found (looked for {root})",
                json_path=f"$.{name}.root",
                dataset=name,
            )
        )
    return out


def at_key(code: str, entry: Any, key: str, message: str) -> Finding:
    """A finding at ``key``'s line of dataset ``entry`` (a meta.MetaEntry) in its meta file, prefixed with the
    dataset's name."""
    return emit(
        code,
        entry.meta_path,
        entry.line_of(key),
        f"dataset {entry.name!r}: {message}",
        json_path=f"$.{entry.name}.{key}",
        dataset=entry.name,
    )


def check_declared_length(entry: Any, line_count: int) -> list[Finding]:
    """IVL111: the meta ``length`` of ``entry`` (a meta.MetaEntry) against the real line count."""
    declared = entry.raw.get("length")
    if type(declared) is not int or declared == line_count:
        return []
    return [at_key("IVL111", entry, "length", f"'length' is {declared} but the annotation file has {line_count} lines")]
