"""Loads the blog post's loop convolution (examples/blog-loops) by file path, installed or not."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BLOG_CONV_PATH = (
    Path(__file__).resolve().parents[2] / "examples" / "blog-loops" / "convparity_blog_loops" / "blog_conv.py"
)


def load_blog_conv() -> ModuleType:
    """The module `blog_conv` (classes Batch2ConvMatrix and Conv2d), loaded from BLOG_CONV_PATH."""
    spec = importlib.util.spec_from_file_location("convparity_blog_loops_blog_conv", BLOG_CONV_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the blog convolution from {BLOG_CONV_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
