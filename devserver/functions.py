"""Loads the five functions from their folders exactly as a platform would: `index.handler`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.endpoints import NAMES  # noqa: E402 (needs ROOT on sys.path)


def load(name: str):
    if name not in NAMES:
        raise KeyError(name)
    module_name = f"tryon_function_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "index.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return module.handler


def load_all() -> dict:
    return {name: load(name) for name in NAMES}
