"""The fenced code blocks of the README and ``docs/``: which run, how, and which are skipped and why.

A ```` ```bash ````, ```` ```sh ```` or ```` ```python ```` block runs (bash with ``-euo pipefail``, python
with the venv's interpreter). A block that cannot run on a laptop carries, on the line right before
its fence, ``<!-- snippet: skip (the reason) -->``. Any other block is text (```` ```text ````,
```` ```yaml ````, ...); one with no language or an unknown one that looks like a command is an error,
so that nothing meant to be run escapes the runner by a missing tag.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Languages that run, and the interpreter that runs them.
RUNNERS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
#: Languages that never run (output, configuration, another program's input).
TEXT = {"text", "console", "yaml", "json", "toml", "ini", "sql", "dockerfile", "csv", "mermaid"}
#: The addresses the docs name for the UI and the gateway.
UI_ADDRESS, API_ADDRESS = "127.0.0.1:3000", "127.0.0.1:8000"

_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_SKIP = re.compile(r"^<!--\s*snippet:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
_COMMAND = re.compile(
    r"^\s*(\$ |\.venv/|scripts/|testkit/|python3? |pip |curl |docker |kubectl |helm |kind |export |cd |sudo |"
    r"apt-get |import |from [\w.]+ import |[A-Z][A-Z0-9_]*=\S*\s+\S)"
)


@dataclass(frozen=True)
class Snippet:
    """One fenced block: where it is, its language tag as written, its code and its skip reason."""

    path: Path
    line: int
    language: str
    code: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def runner(self) -> str | None:
        """``bash`` or ``python`` for a block that runs, else None."""
        return RUNNERS.get(self.language.lower())

    @property
    def looks_like_a_command(self) -> bool:
        """A block that is neither runnable nor known text, whose first line reads like a command."""
        if self.runner or self.language.lower() in TEXT:
            return False
        first = next((line for line in self.code.splitlines() if line.strip()), "")
        return bool(_COMMAND.match(first))


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence`` (the same character, at least as many)."""
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip(fence[0])


def parse(text: str, path: Path) -> list[Snippet]:
    """The fenced blocks of the markdown ``text`` (of ``path``), in order."""
    lines = text.splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.groups()
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        skip = _SKIP.match(before)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Snippet(path, i + 1, language, code, skip.group("reason") if skip else None))
        i = end + 1
    return found


def documents(root: Path) -> list[Path]:
    """The README and every page of the documentation site."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def collect(root: Path) -> list[Snippet]:
    """Every fenced block of the README and ``docs/``."""
    return [s for path in documents(root) for s in parse(path.read_text("utf-8"), path)]


def with_addresses(code: str, addresses: Mapping[str, str]) -> str:
    """``code`` with each documented address (``127.0.0.1:8000``) replaced by the real one."""
    for documented, real in addresses.items():
        code = code.replace(documented, real)
    return code


def run(
    snippet: Snippet, cwd: Path, env: Mapping[str, str], python: Path, addresses: Mapping[str, str], scratch: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``snippet`` from ``cwd`` as a user would: bash with ``-euo pipefail``, python with the
    ``python`` interpreter (the script written into ``scratch``), the documented addresses mapped."""
    code = with_addresses(snippet.code, addresses)
    if snippet.runner == "python":
        script = scratch / "snippet.py"
        script.write_text(code, "utf-8")
        command = [str(python), str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    return subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=600)
