"""Every notebook runs top to bottom, headless, on the zoo; the assertions are inside them."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook


ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "llmcombo_widgets" / "dashboard.ipynb"]
TUTORIALS = [p for p in NOTEBOOKS if p.name[:2].isdigit()]
CELL_TIMEOUT = 900  # seconds per cell: generous, 2 busy CPU cores
# a made-up token put into every notebook's environment: it must never show up in an output
FAKE_TOKEN = "hf_" + "llmcomboTestTokenNeverPrint" * 2

pytestmark = pytest.mark.slow



def execute(nb, workdir: Path) -> None:
    """Run ``nb`` in a fresh kernel whose working folder is ``workdir``. Raises
    :class:`CellExecutionError` (with the failing cell and its traceback) on any error."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()


def test_the_expected_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_merge_methods.ipynb", "03_mixture_of_experts.ipynb",
            "04_ensembles.ipynb", "05_evaluate_and_publish.ipynb", "dashboard.ipynb"} <= names


def test_tutorials_are_what_their_generator_writes():
    """notebooks/_make.py is the source of the tutorials: a notebook edited by hand (or a
    generator edited without regenerating) is caught here."""
    spec = importlib.util.spec_from_file_location("_make", ROOT / "notebooks" / "_make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert set(make.NOTEBOOKS) == {p.name for p in TUTORIALS}
    assert make.main(["--check"]) == 0, "run: python notebooks/_make.py"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorials_assert_what_they_show(path):
    nb = nbformat.read(path, as_version=4)
    asserts = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(line[: len(line) - len(line.lstrip())] + "pass"  # IPython magics
                        if line.lstrip().startswith("%") else line
                        for line in cell.source.splitlines())
        asserts += sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(src)))
    assert asserts >= 5, f"{path.name} checks only {asserts} things"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean_and_colab_ready(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} is committed with outputs"
    assert '"google.colab" in sys.modules' in code[0].source


def test_a_failing_assertion_in_a_notebook_fails(tmp_path):
    """The runner used below must not swallow errors (allow_errors, a try/except ...): a false
    claim in a notebook is a failed test."""
    nb = new_notebook(cells=[new_code_cell("x = 1 + 1"),
                             new_code_cell("assert x == 3, 'the claim is false'"),
                             new_code_cell("print('never reached')")])
    with pytest.raises(CellExecutionError, match="the claim is false"):
        execute(nb, tmp_path)
    assert not nb.cells[2].get("outputs")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, zoo_dir, tmp_path, monkeypatch, request):
    llama = path.name == "07_llama_cpp.ipynb"
    if llama:
        request.getfixturevalue("llama_cpp")  # the [llama] extra (CI installs it)
        monkeypatch.setenv("LLMCOMBO_GGUF_CACHE", str(tmp_path / "gguf-cache"))
    monkeypatch.setenv("LLMCOMBO_ZOO_DIR", str(zoo_dir))
    monkeypatch.setenv("LLMCOMBO_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may need the network
    nb = nbformat.read(path, as_version=4)
    t = time.monotonic()
    execute(nb, tmp_path)  # raises CellExecutionError (with the failing assertion) on any error
    print(f"{path.name}: {time.monotonic() - t:.1f} s, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert FAKE_TOKEN not in json.dumps(outputs), f"{path.name} shows the Hugging Face token"
    written = [f for f in tmp_path.rglob("*") if f.is_file() and f.stat().st_size < 50_000_000
               and FAKE_TOKEN.encode() in f.read_bytes()]
    assert not written, f"{path.name} wrote the token into {written}"
