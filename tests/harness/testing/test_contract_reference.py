"""The contract suite applied to the built-in reference backend."""

from convparity.harness.testing.contract_suite import BackendContract


class TestReferenceBackend(BackendContract):
    backend_name = "reference"
    dtypes = ("float64", "float32", "float16", "bfloat16")
