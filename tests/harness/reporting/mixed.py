"""One hand-written run touching every band and status, with its parity matrix worked out by hand."""

from __future__ import annotations

VERSIONS = {"alpha": "1.0", "beta": "2.5", "gamma": "3.0"}
UNAVAILABLE = {"delta": "No module named 'delta'"}

ROWS = """
c1 T float32 alpha y  pass 0
c1 T float32 alpha dx pass 0.05
c1 T float32 alpha dw pass 0.5
c1 T float32 alpha db pass 0
c2 F float32 alpha y  fail 3.5 123 of 512 elements exceed the bound
c2 F float32 alpha dx pass 0.01
c2 F float32 alpha dw unsupported - alpha computes no dw (forward only)
c3 T float32 alpha y  pass 0.09
c3 T float32 alpha dx pass 0.1
c3 T float32 alpha dw pass 1.0
c3 T float32 alpha db pass 0
c1 T float16 alpha y  error - RuntimeError: <no kernel> for "half" & co
c1 T float16 alpha dx error - RuntimeError: <no kernel> for "half" & co
c1 T float16 alpha dw error - RuntimeError: <no kernel> for "half" & co
c1 T float16 alpha db error - RuntimeError: <no kernel> for "half" & co
c2 F float16 alpha y  pass 0.0999
c2 F float16 alpha dx pass 0.002
c2 F float16 alpha dw pass 0.03
c1 T float32 beta y  pass 0.0999
c1 T float32 beta dx pass 1e-7
c1 T float32 beta dw fail inf 3 non-finite values where the reference is finite
c1 T float32 beta db fail 1.0000001 1 of 8 elements exceed the bound
c4 F float32 beta y  unsupported - beta cannot run 1-D convolutions
c4 F float32 beta dx unsupported - beta cannot run 1-D convolutions
c4 F float32 beta dw unsupported - beta cannot run 1-D convolutions
c2 F float16 beta y  timeout - timed out after 300 s
c2 F float16 beta dx timeout - timed out after 300 s
c2 F float16 beta dw timeout - timed out after 300 s
c1 T float32 gamma y  xfail 4.0 known deviation: declared reason; 9 of 512 elements exceed the bound
c1 T float32 gamma dx pass 0.02
c1 T float32 gamma dw xpass 0.3 declared deviation did not happen (stale declaration?): declared reason
c1 T float32 gamma db reference-error - the reference failed: MemoryError
"""

# (backend, dtype) -> per tensor y, dx, dw, db: (counts text, worst err_ratio text, band); None = no rows.
MATRIX = {
    ("alpha", "float32"): [("2/1/0", "3.5", "fail"), ("3/0/0", "0.1", "near"), ("2/0/1", "1", "near"),
                           ("2/0/0", "0", "exact")],
    ("alpha", "float16"): [("1/0/0 +1 error", "0.1", "fail"), ("1/0/0 +1 error", "0.002", "fail"),
                           ("1/0/0 +1 error", "0.03", "fail"), ("0/0/0 +1 error", "–", "fail")],
    ("beta", "float32"): [("1/0/1", "0.1", "tight"), ("1/0/1", "1e-07", "tight"), ("0/1/1", "inf", "fail"),
                          ("0/1/0", "1", "fail")],
    ("beta", "float16"): [("0/0/0 +1 timeout", "–", "fail")] * 3 + [None],
    ("gamma", "float32"): [("0/0/0 +1 xfail", "4", "known"), ("1/0/0", "0.02", "tight"),
                           ("0/0/0 +1 xpass", "0.3", "known"), ("0/0/0 +1 reference-error", "–", "none")],
}
