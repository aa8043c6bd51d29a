"""Every bash and python block of the README and ``docs/`` run against the started platform, as a
user would run it from the checkout (the documented addresses mapped to the platform's), and the
notebook run as the README says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from testkit import snippets
from testkit.platform import Platform
from testkit.snippets import Snippet, collect

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = collect(ROOT)
RUNNABLE = [s for s in SNIPPETS if s.runner or s.looks_like_a_command]


def _notebook(snippet: Snippet) -> bool:
    return "jupyter nbconvert" in snippet.code


@pytest.fixture(scope="module")
def user_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$HOME`` of the snippets: what they write under ``~`` stays in the test's files."""
    return tmp_path_factory.mktemp("home")


def run(snippet: Snippet, platform: Platform, home: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``snippet`` from the checkout with the platform's environment and ``home`` as ``$HOME``."""
    env = {**platform.env, "HOME": str(home)}
    return snippets.run(snippet, ROOT, env, ROOT / ".venv/bin/python", platform.addresses, tmp_path)


@pytest.mark.parametrize("snippet", [s for s in RUNNABLE if not _notebook(s)], ids=lambda s: s.id)
def test_snippet_runs(platform: Platform, user_home: Path, tmp_path: Path, snippet: Snippet) -> None:
    if snippet.skip:
        pytest.skip(snippet.skip)
    assert snippet.runner, f"{snippet.id}: a command in a block without a language; tag it (bash, python, text)"
    done = run(snippet, platform, user_home, tmp_path)
    assert done.returncode == 0, (
        f"{snippet.id} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def test_the_notebook_runs_as_the_readme_says(platform: Platform, user_home: Path, tmp_path: Path) -> None:
    (snippet,) = [s for s in RUNNABLE if _notebook(s) and s.path.name == "README.md"]
    done = run(snippet, platform, user_home, tmp_path)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (output_dir,) = re.findall(r"--output-dir (\S+)", snippet.code)
    html = (Path(output_dir.replace("~", str(user_home))) / "quickstart.html").read_text("utf-8")
    assert "rows x" in html and "Traceback" not in html
