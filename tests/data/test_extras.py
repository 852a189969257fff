"""A command that needs a missing extra says which one (cli.dispatch), for every command; a broken install does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from internvl_data.cli import dispatch as cli
from tests.helpers.tokenizers import write_model_dir

VALID = Path(__file__).resolve().parents[2] / "fixtures" / "valid" / "meta.json"
BLOCKED = (
    "import sys; sys.modules[{0!r}] = None; from internvl_data.cli.dispatch import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    "command, module, extra",
    [
        (["render", "--model"], "transformers", "model"),
        (["validate", "--no-manifest", "--model"], "transformers", "model"),
        (["stats", "--model"], "transformers", "model"),
        (["stats"], "pandas", "stats"),
    ],
)
def test_a_missing_extra_is_named(tmp_path: Path, command: list[str], module: str, extra: str) -> None:
    model = [str(write_model_dir(tmp_path / "model", "Hermes-2", "qwen2"))] if "--model" in command else []
    args = [command[0], str(VALID), *command[1:], *model]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED.format(module), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"ivl-data {command[0]}: {module} is not installed; install the {extra} extra: pip install 'ivl-kit[{extra}]'\n"
    )


def test_the_extras_come_from_the_package_metadata() -> None:
    names = ("transformers", "sentencepiece", "decord", "matplotlib.pyplot", "torch", "google.protobuf")
    assert [cli._extra_of(m) for m in names] == ["model", "model", "video", "stats", "train", "model"]
    assert cli._extra_of("orjson") is None and cli._extra_of("no_such_module") is None and cli._extra_of(None) is None


def test_a_module_no_extra_provides_is_an_internal_error(run_cli, monkeypatch) -> None:
    import internvl_data.cli.rules as rules

    def broken(args):  # type: ignore[no-untyped-def]
        import no_such_module_of_ivl  # noqa: F401

    monkeypatch.setattr(rules, "run", broken)
    code, out, err = run_cli("rules")
    assert code == 2 and err.startswith("ivl-data: internal error: ModuleNotFoundError: No module named ")
