"""Proof-of-correctness tests for reference_impl: an independent direct-summation method, finite
differences, the adjoint identity, the blog post's loop implementation as an oracle, hand-computed
cases, input validation, memory-budget tiling, cropping and low-precision inputs. The transposed
convolution (test_transposed_*) is proven the same way against its own scatter loops, plus the
adjoint identity with conv_forward and a product count of its reduction lengths."""
