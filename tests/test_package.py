"""The package root: instant import, a small public API whose names are the functions."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_tensorflow():
    code = "import sys, litetrain; import litetrain.cli.app; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_is_instant_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "litetrain.cli.app", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("demo", "build", "check", "compare"):
        assert command in out.stdout
    assert "exit codes" in out.stdout


def test_api_names_stay_functions_after_stage_imports():
    import litetrain
    import litetrain.comparison.session  # noqa: F401
    import litetrain.trainable.builder  # noqa: F401

    for name in ("build", "check", "compare", "demo"):
        assert callable(getattr(litetrain, name)), name
    assert set(litetrain.__all__) >= {"build", "check", "compare", "demo", "LitetrainError"}
