"""`ivl-data schema`: print the JSON Schemas, write them (--write), or fail on drift (--check)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "print, write (--write) or check (--check) the JSON Schemas generated from the models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write schemas/ and internvl_data/_schemas/")
    mode.add_argument("--check", action="store_true", help="exit 1 when a checked-in schema differs")
    parser.add_argument("--which", choices=("meta", "record"), help="print only this schema")


def run(args: argparse.Namespace) -> int:
    from internvl_data.checks.registry import rules_markdown
    from internvl_data.formats.schema import meta_schema, record_schema, schema_texts, write_schemas

    if args.write or args.check:
        changed = write_schemas(check=args.check, rules_doc=rules_markdown())
        verb = "out of date" if args.check else "written"
        for path in changed:
            print(f"{path}: {verb}", file=sys.stderr if args.check else sys.stdout)
        if args.check and changed:
            print("fix: run `ivl-data schema --write` and commit the result", file=sys.stderr)
            return 1
        if not changed:
            print("schemas up to date")
        return 0
    if args.which:
        sys.stdout.write(schema_texts()[args.which])
    else:
        sys.stdout.write(json.dumps({"meta": meta_schema(), "record": record_schema()}, indent=2) + "\n")
    return 0
