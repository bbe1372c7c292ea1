"""Docs that cannot drift: generated references are current; README commands match CI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segsql.cli import cli, docgen
from segsql.compile.builtins import BUILTINS

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("filename", sorted(docgen.GENERATED))
def test_generated_docs_are_current(filename: str) -> None:
    expected = docgen.GENERATED[filename]()
    assert (REPO / "docs" / filename).read_text(encoding="utf-8") == expected, "run `make docs`"


def test_every_builtin_has_a_docstring_with_an_example() -> None:
    for name, function in BUILTINS.items():
        assert function.__doc__ and "`" in function.__doc__, name


def test_every_command_has_help() -> None:
    for name, command in cli.commands.items():
        assert command.help and len(command.help) > 20, name


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a bash block of two commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()


def test_cli_reference_names_each_command_once_in_its_usage() -> None:
    text = docgen.cli_reference()
    assert "Usage: segsql segsql" not in text and "Usage: segsql show [OPTIONS] NAME" in text


def test_readme_puts_debug_before_the_command() -> None:
    """`--debug` is an option of `segsql` itself: README listed it among the commands' shared
    options, and `segsql list --debug` is a usage error."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    shared = text.split("Shared options:", 1)[1].split("Exit codes", 1)[0]
    assert "`segsql --debug CMD`" in shared and "`--debug`" not in shared
    assert "--debug" in {option for parameter in cli.params for option in parameter.opts}
    assert all("--debug" not in option for command in cli.commands.values() for parameter in command.params
               for option in parameter.opts)
