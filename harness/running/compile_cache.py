"""Compile once: where the frameworks keep compiled programs between runs, and how long they spent compiling.

Most of a sweep on the XLA backends is compiling, not computing (default grid, float32: jax ~0.37 s,
keras ~0.33 s, tensorflow ~0.16 s per case, nearly all of it compile), and on the compiler backends
(torch-inductor, tinygrad: seconds a case). These frameworks can keep what they compiled on disk,
keyed by the program, and load it in a later process instead of compiling:

- JAX: its persistent compilation cache (`jax_compilation_cache_dir`), with the thresholds that keep
  small or quickly compiled programs out of it lowered to zero (every case here is small).
- TensorFlow (and Keras on it): the persistent cache of its XLA device compiler
  (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=...`), used by functions compiled with
  `jit_compile=True`: the tensorflow backend's XLA path and the Keras backend's, which together take
  most cases on CPU (channels-first gradients, grouped or dilated gradients). TensorFlow's eager
  kernels and plain `tf.function` graphs compile nothing XLA could keep; their tracing is not cached.
  TensorFlow keys its entries by the traced functions' names, which it numbers from process-wide
  counters; the tensorflow plugin names each case's functions after the case instead
  (plugins/tensorflow_backend.py, `case_function_names`), so an entry is found whatever order the
  cases run in, on any worker: docs/scaling.md says what was measured.
- TorchInductor: its own caches (FX graphs, AOTAutograd, compiled kernels), on by default under /tmp:
  moved into the setting's folder (`TORCHINDUCTOR_CACHE_DIR`), or disabled for "off"
  (`TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`). For "off", JAX gets `JAX_ENABLE_COMPILATION_CACHE=false`
  and TensorFlow's flags lose the cache flag, so a user's own cache variables do not outlive "off".
- tinygrad: its kernel cache, a sqlite file under ~/.cache/tinygrad by default: moved into the
  setting's folder (`CACHEDB`), or disabled for "off" (`CACHELEVEL=0`).

The setting (`RunSettings.compile_cache`, validated there) is "default" (a folder under the user's
cache directory), "off" (every worker compiles afresh), or a folder. It is resolved where the worker
processes start (`environment`), so on a cluster "default" means each machine's own cache directory.
Entries go into a subfolder per CPU model and feature flags and per framework version
(`cache_folder`): code compiled for one CPU may use instructions another lacks (TensorFlow's loader
says "could lead to execution errors such as SIGILL"), so a folder shared by unlike machines never
hands one the other's code.

A cached program is the same program: cached and uncached runs give the same rows.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

DEFAULT = "default"
OFF = "off"
TF_CACHE_FLAG = "--tf_xla_persistent_cache_directory"
# What JAX reports through jax.monitoring while it turns a function into an executable: tracing,
# lowering to MLIR, and XLA's compile (or, on a persistent-cache hit, loading the entry).
JAX_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                      "/jax/core/compile/backend_compile_duration")


def default_root(environment: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/convparity/compile, or ~/.cache/convparity/compile."""
    environment = os.environ if environment is None else environment
    base = environment.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convparity" / "compile"


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


def _installed_version(*distributions: str) -> str | None:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def cache_folder(setting: str, framework: str, version: str, environment: Mapping[str, str] | None = None) -> Path:
    """The folder of `framework` `version`'s entries on this machine for the setting (not "off", which has none)."""
    if setting == OFF:
        raise ValueError("compile_cache is 'off': there is no cache folder")
    root = default_root(environment) if setting == DEFAULT else Path(setting).expanduser()
    return root / machine_fingerprint() / f"{framework}-{version}"


# Per framework: the variables for worker processes given its cache folder, or None for "off", and the
# variables already set (`current`). A folder setting leaves a framework whose cache the user steers
# already to them; "off" always turns the cache off, whatever else is set.


def _jax(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    if folder is None:
        return {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    if "JAX_COMPILATION_CACHE_DIR" in current or "JAX_ENABLE_COMPILATION_CACHE" in current:
        return {}
    wanted = {"JAX_COMPILATION_CACHE_DIR": str(folder),
              # every case here compiles in well under JAX's thresholds for keeping an entry; a user's own win
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return {name: value for name, value in wanted.items() if name not in current}


def _tensorflow(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    flags = current.get("TF_XLA_FLAGS", "").split()
    cache_flags = [flag for flag in flags if flag.startswith(TF_CACHE_FLAG)]
    if folder is None:  # TensorFlow keeps nothing on disk unless the flag asks it to
        return {"TF_XLA_FLAGS": " ".join(f for f in flags if f not in cache_flags)} if cache_flags else {}
    if cache_flags:
        return {}
    return {"TF_XLA_FLAGS": " ".join([*flags, f"{TF_CACHE_FLAG}={folder}"])}  # keeping the user's other flags


def _torch_inductor(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    # Inductor keeps its FX-graph, AOTAutograd and compiled-kernel caches under /tmp by default.
    if folder is None:
        return {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
    if any(name in current for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FORCE_DISABLE_CACHES",
                                        "TORCH_COMPILE_FORCE_DISABLE_CACHES")):
        return {}
    return {"TORCHINDUCTOR_CACHE_DIR": str(folder)}


def _tinygrad(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    # tinygrad keeps compiled kernels in a sqlite file under ~/.cache/tinygrad by default.
    if folder is None:
        return {"CACHELEVEL": "0"}
    if "CACHEDB" in current or "CACHELEVEL" in current:
        return {}
    return {"CACHEDB": str(folder / "cache.db")}


CacheVariables = Callable[[Path | None, Mapping[str, str]], dict[str, str]]
# (cache folder name, distributions whose first installed one gives the version, variables)
FRAMEWORK_CACHES: tuple[tuple[str, tuple[str, ...], CacheVariables], ...] = (
    ("jax", ("jax",), _jax),
    ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-gpu"), _tensorflow),
    ("torch-inductor", ("torch",), _torch_inductor),
    ("tinygrad", ("tinygrad",), _tinygrad),
)


def environment(setting: str, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that point the frameworks' caches at the setting's folders, or turn them off,
    for worker processes started on this machine.

    Only for frameworks installed here. With a folder (or "default"), a framework whose cache the
    user already steers in `current` (default os.environ: JAX_COMPILATION_CACHE_DIR, the persistent
    cache flag in TF_XLA_FLAGS, TORCHINDUCTOR_CACHE_DIR, CACHEDB, ...) is left to them. "off" turns
    every cache off whatever is set. The frameworks create the folders when they first store a program.
    """
    current = os.environ if current is None else current
    found: dict[str, str] = {}
    for name, distributions, variables in FRAMEWORK_CACHES:
        version = _installed_version(*distributions)
        if version is not None:
            folder = None if setting == OFF else cache_folder(setting, name, version, current)
            found.update(variables(folder, current))
    return found


class CompileClock:
    """Seconds this process has spent compiling, as far as a framework reports it.

    JAX reports tracing, lowering and compiling through jax.monitoring; a clock made after jax is
    imported (a worker makes it once its framework is loaded) listens to those events. TensorFlow
    reports nothing comparable, so `measured` is False there and `seconds` stays 0.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.measured = False
        if "jax" in sys.modules:
            import jax.monitoring

            jax.monitoring.register_event_duration_secs_listener(self._event)
            self.measured = True

    def _event(self, event: str, duration_secs: float, **_: str | int) -> None:
        if event in JAX_COMPILE_EVENTS:
            self.seconds += duration_secs
