"""`ivl-data rules` (the catalogue as a table or JSON) and `ivl-data explain CODE` (one rule's documentation)."""

from __future__ import annotations

import argparse
import sys

import orjson

from internvl_data.checks.catalogue import Rule, severity_text
from internvl_data.checks.registry import all_rules

HELP = {
    "rules": "list every rule: code, name, severity, summary",
    "explain": "show what a rule checks, why, an example and the fix",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "rules":
        parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    else:
        parser.add_argument("code", help="a rule code such as IVL201 (case-insensitive) or a rule name")


def rules_table(rules: list[Rule]) -> str:
    width = max((len(r.name) for r in rules), default=4)
    lines = [f"{'code':<7} {'name':<{width}} {'severity':<8} summary"]
    lines += [f"{r.code:<7} {r.name:<{width}} {r.severity.value:<8} {r.summary}" for r in rules]
    return "\n".join(lines) + "\n"


def rule_json(r: Rule) -> dict:
    return {
        "code": r.code,
        "name": r.name,
        "severity": r.severity.value,
        "summary": r.summary,
        "why": r.why,
        "example": r.example,
        "fix": r.fix,
        "consequence": r.consequence.value,
        "override": r.override,
        "cases": [
            {"when": c.when, "consequence": c.consequence.value, "severity": c.severity.value, "override": c.override}
            for c in r.cases
        ],
    }


def explain_text(r: Rule) -> str:
    severity = "\n  ".join(severity_text(r))  # the Severity line, then each case indented
    return (
        f"{r.code} {r.name} ({r.severity.value})\n\n"
        f"What it does\n  {r.summary}\n\n"
        f"Why is this bad?\n  {r.why}\n\n"
        f"{severity}\n\n"
        f"Example\n  {r.example}\n\n"
        f"How to fix\n  {r.fix}\n"
    )


def find_rule(query: str, rules: dict[str, Rule]) -> Rule | None:
    q = query.strip()
    return rules.get(q.upper()) or next((r for r in rules.values() if r.name == q.lower()), None)


def run(args: argparse.Namespace) -> int:
    rules = all_rules()
    if args._name == "rules":
        if args.format == "json":
            doc = orjson.dumps([rule_json(r) for r in rules.values()], option=orjson.OPT_INDENT_2)
            sys.stdout.write(doc.decode() + "\n")
        else:
            sys.stdout.write(rules_table(list(rules.values())))
        return 0
    found = find_rule(args.code, rules)
    if found is None:
        families = sorted({code[:4] + "xx" for code in rules})
        print(
            f"ivl-data explain: unknown rule {args.code!r}. Families: {', '.join(families) or 'none registered'}; "
            "`ivl-data rules` lists every code.",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(explain_text(found))
    return 0
