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

from convparity.harness.errors import ConvparityError

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


class CacheSettingError(ConvparityError, ValueError):
    """A compile-cache setting that cannot be used here: a file, a folder that cannot be made or written."""


def check(setting: str, environment: Mapping[str, str] | None = None) -> None:
    """CacheSettingError naming the folder and the problem unless the setting's folder is usable on this machine:
    a folder (made if absent, as the frameworks would) that this process may write. "off" is always usable."""
    if setting == OFF:
        return
    root = default_root(environment) if setting == DEFAULT else Path(setting).expanduser()
    if root.exists() and not root.is_dir():
        raise CacheSettingError(f"--compile-cache {root} is a file, not a folder: name a folder, or 'off'")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CacheSettingError(f"--compile-cache: cannot make the folder {root}: {error.strerror or error}; name "
                                "another folder, or 'off'") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise CacheSettingError(f"--compile-cache: the folder {root} is not writable here; name another folder, "
                                "or 'off'")


def machine_folder(setting: str, environment: Mapping[str, str] | None = None) -> Path | None:
    """The folder this machine's backends keep their caches in for the setting, or None for "off"."""
    if setting == OFF:
        return None
    root = default_root(environment) if setting == DEFAULT else Path(setting).expanduser()
    return root / machine_fingerprint()
