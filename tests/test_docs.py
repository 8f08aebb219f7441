"""Every command is documented in README.md with an example, and the README's first lines give
the two setup commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcptune.cli.main import command_paths

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def example_lines() -> list[str]:
    """Lines inside fenced code blocks, with a leading '$ ' or 'sudo ' removed."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = re.sub(r"^\$ ", "", line.strip())
            lines.append(re.sub(r"^sudo ", "", line))
    return lines


def all_commands() -> list[str]:
    return command_paths()


@pytest.mark.parametrize("command", all_commands())
def test_every_command_has_a_readme_example(command: str) -> None:
    assert any(line.startswith(f"tcptune {command}") for line in example_lines()), command


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join(README.splitlines()[:10])
    assert "make run" in head and "make test" in head
