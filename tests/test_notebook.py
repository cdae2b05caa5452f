"""notebooks/bnnflow_board.ipynb runs end to end against board-sim, so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the 'test' extra installs nbformat/nbclient/ipykernel")
from nbclient import NotebookClient  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "bnnflow_board.ipynb"


def test_board_notebook_runs_on_board_sim(digits_run, tmp_path, monkeypatch):
    from bnnflow.cli import main

    export = tmp_path / "export"
    assert main(["export", str(digits_run), "--out", str(export), "--generate", "rtl"]) == 0
    monkeypatch.setenv("BNNFLOW_EXPORT", str(export))
    monkeypatch.setenv("BNNFLOW_BACKEND", "board-sim")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   ).execute()
    text = "\n".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))
    assert f"export {export}, backend board-sim" in text
    assert "parameters loaded from" in text
    assert " images whose scores differ from golden" in text and ", 0 images whose scores differ" in text
    images = [out for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) == 1  # the eight test images with their predicted labels
    assert "accelerator_images_per_s" in text and "end_to_end_images_per_s" in text
