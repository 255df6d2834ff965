"""Every command the README shows exists: make targets in the Makefile, module entry points and scripts that start,
and each flag they are given appears in their --help."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys

import pytest

from twitchcrement import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def commands() -> list[str]:
    """Shell commands of the README's ```sh blocks: comments dropped, continuation lines joined."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def words(command: str) -> list[str]:
    parts = shlex.split(command)
    while parts and ASSIGNMENT.match(parts[0]):
        parts.pop(0)  # VAR=value before the command
    return parts


def help_text(program: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, *program, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{' '.join(program)} --help failed: {done.stderr[-500:]}"
    return done.stdout


def test_the_quickstart_is_exactly_the_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in quickstart.strip().splitlines()] == ["make demo", "make test"]


@pytest.mark.parametrize("command", commands())
def test_readme_command_exists(command: str) -> None:
    parts = words(command)
    program, args = parts[0], parts[1:]
    if program == "make":
        for target in args:
            assert re.search(rf"^{re.escape(target)}:", MAKEFILE, flags=re.M), f"no make target {target!r}"
        return
    if program == "spark-submit":
        script = next(a for a in args if a.endswith(".py"))
        assert (PROJECT_ROOT / script).exists()
        program, args = script, args[args.index(script) + 1 :]
    elif program == ".venv/bin/python":
        program, args = args[0], args[1:]
    elif program == "twitchcrement":  # the console script: its module, and the subcommands before the arguments
        program, args = "-m", ["twitchcrement.cli", *args]
    elif program == "pip":
        assert args[0] == "install" and (PROJECT_ROOT / "pyproject.toml").exists()
        for flag, value in itertools.pairwise(args):
            if flag == "-c":
                assert (PROJECT_ROOT / value).exists(), f"no constraints file {value}"
        return
    else:
        pytest.fail(f"the README shows a command this test does not know how to check: {command}")
    if program == "-m":
        module, args = args[0], args[1:]
        entry = ["-m", module]
        while args and not args[0].startswith("-") and "/" not in args[0] and "." not in args[0]:
            entry.append(args[0])  # subcommands (twitchcrement ingest replay ...), not paths
            args = args[1:]
            if module != "twitchcrement.cli":
                break
    else:
        assert (PROJECT_ROOT / program).exists(), f"{program} does not exist"
        entry = [program]
    text = help_text(entry)
    for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert flag in text, f"{' '.join(entry)} has no {flag} (README: {command})"
