"""``examples/quickstart.ipynb`` executed end to end against a real gateway (uvicorn, SQLite)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.integration.test_api_support import ROOT, seed, serve


def test_quickstart_notebook_runs_against_a_live_gateway(sqlite_url, monkeypatch):
    seed(sqlite_url)
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    with serve(sqlite_url) as base:
        monkeypatch.setenv("CRYPTO_API_URL", base)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
        NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "rows x" in printed
