"""The old flat module paths (before the restructuring) still import, warn, and are the new modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ("internvl_data.stats_scan", "internvl_data.stats.worker"),
    ("internvl_data.engine", "internvl_data.validator.driver"),
    ("internvl_data.report.text", "internvl_data.validator.report.text"),
    ("internvl_data.checks_records", "internvl_data.checks.records"),
    ("internvl_data.rules", "internvl_data.checks.registry"),
    ("internvl_train.loading", "internvl_train.checkpoint.loading"),
]


@pytest.mark.parametrize(("old", "new"), CASES)
def test_old_path_warns_and_is_the_new_module(old: str, new: str) -> None:
    script = (
        f"import importlib, warnings\nwarnings.simplefilter('always')\n"
        f"with warnings.catch_warnings(record=True) as w:\n    a = importlib.import_module({old!r})\n"
        f"b = importlib.import_module({new!r})\nassert a is b, (a, b)\n"
        f"msgs = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
        f"assert msgs[-1] == {old!r} + ' moved to ' + {new!r} + '; the old path goes away in the next release', msgs\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_old_module_names_of_packages_forward_with_a_warning() -> None:
    script = (
        "import warnings\nwarnings.simplefilter('error')\nimport internvl_data.media as m\n"
        "try:\n    m.resolve\nexcept DeprecationWarning as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "internvl_data.media.resolve moved to internvl_data.media.probe.resolve", proc.stderr


def test_old_rules_module_keeps_its_names() -> None:
    """``internvl_data.rules`` had both the registration helpers and the complete catalogue."""
    script = (
        "import warnings\nwarnings.simplefilter('ignore')\nimport internvl_data.rules as r\n"
        "print(sorted(n for n in ('all_rules', 'get', 'rule', 'emit', 'selected', 'Rule') if hasattr(r, n)),"
        " r.get('IVL201').name, len(r.all_rules()) > 60)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (
        proc.stdout.strip() == "['Rule', 'all_rules', 'emit', 'get', 'rule', 'selected'] conversations-missing True"
    ), proc.stderr
