"""Issue 14 item 3: help that teaches (description + examples that parse), one name and default per option,
shell completion and --version for both tools."""

from __future__ import annotations

import argparse
import collections
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_data.cli.completion import _commands
from internvl_data.cli.dispatch import build_parser as data_parser
from internvl_data.cli.dispatch import main as ivl_data
from internvl_data.cli.examples import EXAMPLES
from internvl_train.cli.dispatch import build_parser as train_parser
from internvl_train.cli.dispatch import main as ivl_train

BIN = Path(sys.executable).parent
PARSERS = {"ivl-data": data_parser, "ivl-train": train_parser}
# the same option may differ only here: stats' text output is a table (`--format table`)
SAME_EXCEPT = {"--format"}


def commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    return [(tool, name, sub) for tool, build in PARSERS.items() for name, sub in _commands(build()).items()]


def argv_of(example: str, tool: str) -> list[str]:
    """The words of an example's ``tool`` command: no comment, no other pipeline stage, no redirection."""
    command = next(part for part in example.split("  #")[0].split("|") if part.strip().startswith(tool))
    words = shlex.split(command.replace("$(git diff --name-only main)", "a.jsonl"))
    return words[: words.index(">")] if ">" in words else words


@pytest.mark.parametrize(("tool", "name", "sub"), commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_a_description_and_examples_that_parse(tool, name, sub):
    assert sub.description and "\n" not in sub.description.strip()
    examples = EXAMPLES[tool].get(name)
    assert examples, f"add 2 or 3 examples of `{tool} {name}` to internvl_data/cli/examples.py"
    assert 2 <= len(examples) <= 3 and sub.epilog.startswith("examples:\n")
    for example in examples:
        assert f"  {example}" in sub.epilog
        words = argv_of(example, tool)
        assert words[:2] == [tool, name], example
        sub.parse_args(words[2:])  # every option of every example exists (a usage error exits 2)


def test_the_same_option_has_the_same_name_default_and_metavar_everywhere():
    seen: dict[str, dict[str, tuple]] = collections.defaultdict(dict)
    for tool, name, sub in commands():
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help" and opt not in SAME_EXCEPT:
                    seen[opt][f"{tool} {name}"] = (repr(action.default), action.metavar)
    differ = {opt: where for opt, where in seen.items() if len(set(where.values())) > 1}
    assert differ == {}
    assert seen["--num-frames"]["ivl-data render"] == ("32", "N") == seen["--num-frames"]["ivl-data stats"]
    assert seen["--no-progress"].keys() >= {"ivl-data validate", "ivl-data stats", "ivl-data lengths"}


def test_positional_meta_is_named_meta_everywhere():
    for tool, name, sub in commands():
        if tool == "ivl-data" and name in ("validate", "render", "stats", "lengths"):
            positional = [a for a in sub._actions if not a.option_strings and a.dest != "help"]
            assert positional[0].metavar == "META", name


@pytest.mark.parametrize(("tool", "main"), [("ivl-data", ivl_data), ("ivl-train", ivl_train)])
def test_version(tool, main, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"{tool} 0.1.0\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell, capsys):
    with pytest.raises(SystemExit) as exc:
        ivl_data(["--completion", shell])
    assert exc.value.code == 0
    script = capsys.readouterr().out
    assert "ivl-data" in script and "import" in script and "pre-commit" in script
    if shell == "fish":
        assert (
            "complete -c ivl-data -n '__fish_seen_subcommand_from validate' -l media -x -a 'off exists header decode'"
            in script
        )
    else:
        assert "validate:--media) words='off exists header decode' ;;" in script


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_options_and_choices():
    script = subprocess.run(
        [str(BIN / "ivl-data"), "--completion", "bash"], capture_output=True, text=True, check=True
    ).stdout

    def complete(*words: str) -> list[str]:
        """COMPREPLY for the command line ``words`` with the cursor in the last word."""
        line = " ".join(shlex.quote(w) for w in words)
        probe = (
            f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _ivl_data; printf "%s\\n" "${{COMPREPLY[@]}}"'
        )
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert complete("ivl-data", "st") == ["stats"]
    assert complete("ivl-data", "validate", "--medi") == ["--media"]
    assert complete("ivl-data", "validate", "--media", "he") == ["header"]
    assert complete("ivl-data", "import", "--from", "") == ["sharegpt", "openai-messages", "llava"]
    assert "--completion" in complete("ivl-data", "--")


def test_train_completion(capsys):
    with pytest.raises(SystemExit):
        ivl_train(["--completion", "bash"])
    script = capsys.readouterr().out
    assert "complete -o filenames -F _ivl_train ivl-train" in script and "convert)" in script
