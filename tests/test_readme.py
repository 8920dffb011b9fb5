"""README.md's Python example runs and its claims hold; its commands are the CI's."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    commands = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)[:2]
    assert "effdsl compile specs/efficientnet_b0.eff --phi 3" in commands[0]
    test_command = commands[1].split("&&")[-1].strip()
    assert test_command == "python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == test_command
