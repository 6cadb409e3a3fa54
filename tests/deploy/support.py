"""Paths and loaders shared by the deployment tests."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scripts" / "image-smoke"


def load_script(path: Path) -> ModuleType:
    """Import a script that has no .py suffix (scripts/image-smoke) or lives outside a package."""
    name = path.name.replace("-", "_").removesuffix(".py")
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    loader.exec_module(module)
    return module


def smoke() -> ModuleType:
    """scripts/image-smoke as a module: its Dockerfile parser and .dockerignore rules are the tests' too."""
    return load_script(SMOKE)
