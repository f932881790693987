"""Proof-of-correctness tests for reference_impl: an independent direct-summation method, finite
differences, the adjoint identity, the blog post's loop implementation as an oracle, hand-computed
cases, input validation, memory-budget tiling, cropping and low-precision inputs."""
