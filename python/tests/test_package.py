"""The package surface: stubs match the compiled module, every public name is documented,
scikit-learn is not imported at runtime."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import codegrey_soc as cs


def test_native_stubs_match_the_compiled_module():
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "codegrey_soc._native"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_py_typed_marker_is_shipped():
    assert (Path(cs.__file__).parent / "py.typed").exists()


def test_every_public_name_has_a_docstring():
    missing = []
    for name in cs.__all__:
        obj = getattr(cs, name)
        if name == "__version__":
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member) and not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert not missing


def test_importing_the_package_does_not_import_scikit_learn():
    code = "import sys, codegrey_soc; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_quickstart_example_runs(tmp_path):
    from conftest import DATA_DIR

    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    out = subprocess.run(
        [sys.executable, str(example), str(DATA_DIR)], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "risk ROC AUC" in out.stdout and "fired by" in out.stdout and "saved" in out.stdout
