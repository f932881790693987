"""Compile once: where the frameworks keep what they compile between runs.

Much of a sweep on compiling backends is compiling, not computing (XLA backends spend nearly all of a small
case compiling; compiler backends seconds a case). Frameworks can keep what they compiled on disk, keyed by
the program, and load it in a later process instead of compiling again. Each backend says how its
framework's cache is pointed at a folder or turned off (its optional `cache_environment` member,
convparity.harness.backends.contract); this module only resolves the run's setting.

The setting (`RunSettings.compile_cache`) is "default" (a folder under the user's cache directory), "off"
(every worker compiles afresh), or a folder. It is resolved where the worker processes start
(`machine_folder`), so on a cluster "default" means each machine's own cache directory. Entries go into a
subfolder per CPU model and feature flags (`machine_fingerprint`), in which each backend keeps a folder of
its own per framework version: code compiled for one CPU may use instructions another lacks (TensorFlow's
loader warns of SIGILL), so a folder shared by unlike machines never hands one the other's code.

A cached program is the same program: cached and uncached runs give the same rows.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT = "default"
OFF = "off"


def cache_home(environment: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/convparity, or ~/.cache/convparity: the compile caches and the learned costs live there."""
    environment = os.environ if environment is None else environment
    base = environment.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convparity"


def default_root(environment: Mapping[str, str] | None = None) -> Path:
    """Where "default" keeps compiled programs: cache_home()/compile."""
    return cache_home(environment) / "compile"


def machine_fingerprint() -> str:
    """12 hex digits naming this machine's CPU model and instruction-set flags (and the OS and architecture)."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
                if model and flags:
                    break
    except OSError:  # not Linux: the processor string is the best there is
        model = platform.processor()
    text = "|".join((sys.platform, platform.machine(), model, flags))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def machine_folder(setting: str, environment: Mapping[str, str] | None = None) -> Path | None:
    """The folder this machine's backends keep their caches in for the setting, or None for "off"."""
    if setting == OFF:
        return None
    root = default_root(environment) if setting == DEFAULT else Path(setting).expanduser()
    return root / machine_fingerprint()
