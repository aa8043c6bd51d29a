"""The snippet extraction of ``testkit/snippets.py``, and the docs' blocks: every one runnable, text,
or skipped with a reason."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from testkit.snippets import API_ADDRESS, Snippet, collect, parse, run, with_addresses

ROOT = Path(__file__).resolve().parents[2]

PAGE = """# A page

```bash
curl -fsS http://127.0.0.1:8000/v1/freshness
```

<!-- snippet: skip (needs a Kubernetes cluster) -->

```bash
kubectl get pods
```

````python
print("```")
````

```
.venv/bin/python -m api
```

```text
source  status
```
"""


def test_blocks_their_languages_and_skips():
    blocks = parse(PAGE, Path("page.md"))
    assert [(b.line, b.language, b.runner, b.skip) for b in blocks] == [
        (3, "bash", "bash", None),
        (9, "bash", "bash", "needs a Kubernetes cluster"),
        (13, "python", "python", None),
        (17, "", None, None),
        (21, "text", None, None),
    ]
    assert blocks[2].code == 'print("```")\n'
    assert [b.looks_like_a_command for b in blocks] == [False, False, False, True, False]


def test_documented_addresses_are_mapped():
    code = parse(PAGE, Path("page.md"))[0].code
    assert with_addresses(code, {API_ADDRESS: "127.0.0.1:41234"}) == "curl -fsS http://127.0.0.1:41234/v1/freshness\n"


def test_every_block_of_the_docs_runs_or_is_text_or_says_why_not():
    blocks = collect(ROOT)
    assert any(b.runner for b in blocks)
    assert [b.id for b in blocks if b.looks_like_a_command] == [], "give these blocks a language (text for output)"
    assert [b.id for b in blocks if b.skip is not None and not b.skip.strip()] == []


def test_a_snippet_runs_from_its_directory_and_fails_on_the_first_failing_command(tmp_path):
    def ran(language: str, code: str) -> tuple[int, str]:
        done = run(Snippet(Path("x.md"), 1, language, code), tmp_path, os.environ, Path(sys.executable), {}, tmp_path)
        return done.returncode, done.stdout

    assert ran("bash", "pwd\n") == (0, f"{tmp_path}\n")
    assert ran("bash", "false\necho not reached\n") == (1, "")
    assert ran("bash", "false | cat\n")[0] == 1
    assert ran("python", "print(6 * 7)\n") == (0, "42\n")
    assert ran("python", "raise SystemExit(3)\n")[0] == 3
