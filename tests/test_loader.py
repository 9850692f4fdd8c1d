"""A notebook or module becomes the namespace of its definitions; demo code never runs."""
import nbformat
import pytest

from grader.errors import LoadError
from grader.grading.reading import read_source
from grader.student import execute


def notebook(tmp_path, cells, name="ex.ipynb"):
    nb = nbformat.v4.new_notebook()
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_code_cell(src) if kind == "code" else nbformat.v4.new_markdown_cell(src))
    p = tmp_path / name
    nbformat.write(nb, p)
    return p


def load(path):
    return execute.load(read_source(path)).namespace


def test_notebook_definitions_magics_and_demo_cells(tmp_path):
    p = notebook(tmp_path, [
        ("markdown", "# Title"),
        ("code", "%matplotlib inline\n!pip list\nimport math\nimport matplotlib.pyplot as plt\nEPS = 1e-6"),
        ("code", "def f(x):\n    return x + EPS\n"),
        ("code", "print('demo')\nassert f(1) == 0, 'my own failing check'\nwhile True:\n    pass"),
        ("code", "%%time\ndef g(x):\n    return 2 * x"),
        ("code", "%%bash\necho hi"),
        ("code", "def f(x):\n    return x + 1  # a later definition wins"),
        ("code", "files = !ls\nSLOW = [0 for _ in iter(int, 1)]"),
    ])
    ns = load(p)
    assert ns["f"](1) == 2 and ns["g"](2) == 4 and ns["EPS"] == 1e-6 and "SLOW" not in ns
    assert "plt" not in ns and "math" in ns  # plotting imports serve demo cells only


def test_syntax_error_names_the_cell(tmp_path):
    p = notebook(tmp_path, [("code", "x = 1"), ("code", "def f(:\n  pass")])
    with pytest.raises(LoadError) as e:
        load(p)
    assert "cell 2" in str(e.value) and "ex.ipynb" in str(e.value)


@pytest.mark.parametrize("raw, why", [(b"{not json", "not a valid notebook"), (b'{"a": 1}', "not a valid notebook"),
                                      (b"\xff\xfe\x00", "UTF-8")])
def test_invalid_notebooks(tmp_path, raw, why):
    p = tmp_path / "ex.ipynb"
    p.write_bytes(raw)
    with pytest.raises(LoadError) as e:
        read_source(p)
    assert why in str(e.value)


def test_crash_at_import_is_a_load_error(tmp_path):
    p = tmp_path / "ex.py"
    p.write_text("import no_such_module_xyz\ndef f():\n    return 1\n")
    with pytest.raises(LoadError) as e:
        load(p)
    assert "ModuleNotFoundError" in str(e.value)


def test_module_main_guard_and_try_import(tmp_path):
    p = tmp_path / "ex.py"
    p.write_text("try:\n    import numpy as np\nexcept ImportError:\n    np = None\n"
                 "def f():\n    return np is not None\n"
                 "if __name__ == '__main__':\n    raise SystemExit(f())\n")
    assert load(p)["f"]() is True


IPYTHON_CELLS = [
    "x = 1 % 2\nprint(f'{x!r}')\nassert x != 0",          # % and ! that are plain Python
    "    y = 1\n    z = 2",                                   # indented cell: IPython dedents it
    "\n\n%time w = 3",                                         # line magic after blank lines
    "torch.sigmoid?",                                          # help
    "?torch.sigmoid",
    "out = %timeit -o 1 + 1",                                  # magic assignment
    "out = !echo hi",                                          # shell assignment
    "  !ls\nv = 5",                                            # indented shell escape
    "/print 1",                                                # autocall escapes
    ",print a b",
    ";print a",
    ">>> a = 1\n>>> b = 2",                                    # pasted prompts
    "In [1]: c = 3",
    "def f(x):\n    return x  # what? not help, a comment",
    "s = 'is this help?'",
]


@pytest.mark.parametrize("cell", IPYTHON_CELLS)
def test_plain_cells_skip_the_transformer_and_mean_the_same(cell, tmp_path):
    """Cells that IPython would rewrite still go through its transformer; the others skip it
    (a speed path) and must come out as the same program."""
    from IPython.core.inputtransformer2 import TransformerManager
    expected = TransformerManager().transform_cell(cell)
    got = read_source(notebook(tmp_path, [("code", cell)])).text
    expected = expected if expected.endswith("\n") else expected + "\n"
    assert got.lstrip("\n") == expected.lstrip("\n")   # (IPython also drops leading blank lines)
