"""The core of convparity (installed as `convparity.harness`): cases, backends, evaluation, running, search,
reporting and testing. The public API is `convparity` itself; plugin authors import `convparity.plugin`.
"""

__version__ = "0.1.0"
