"""The notebooks run top to bottom, headless, against the test run's own Kafka and Cassandra (a cell that fails
fails the test), and they are committed without outputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from tests.conftest import TEST_ENVIRONMENT
from twitchcrement import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_three_notebooks_committed_without_outputs() -> None:
    assert [n.name for n in NOTEBOOKS] == ["01_explore_chat.ipynb", "02_tune_detector.ipynb", "03_spam_history.ipynb"]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        with_outputs = [
            i
            for i, cell in enumerate(book.cells)
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
        ]
        assert not with_outputs, (
            f"{path.name}: cells {with_outputs} have outputs; strip them before committing (`make notebooks-strip`)"
        )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, platform, artifacts: Path, monkeypatch) -> None:
    from nbclient import NotebookClient

    for key, value in TEST_ENVIRONMENT.items():  # the kernel inherits the test services' addresses
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "") or __import__("sys").executable)
    book = nbformat.read(path, as_version=4)
    began = time.monotonic()
    NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    print(f"{path.name}: {time.monotonic() - began:.0f} s")
    nbformat.write(book, artifacts / path.name)  # the executed copy, plots included, for a look
