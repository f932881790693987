"""The `blog-loops` backend: the blog post's Conv2d behind convparity's backend contract.

The post's code covers 2-D convolution with one stride for both dims and nothing else; every other
spec is declared as data in `LIMITS` (with the reason), so `supports` answers from them
(`DeclaredLimits`), `convparity backends --limits` lists them and those cases read `unsupported`.
The post computes in float64 and is not known to be wrong anywhere: it declares no deviations.
"""

import numpy as np

from convparity.plugin import DeclaredLimits, Limit, hookimpl
from convparity_blog_loops.blog_conv import Conv2d

LIMITS = (
    Limit("spatial rank is not 2", "the post's Conv2d is 2-D only", lambda spec: spec.rank != 2),
    Limit("padding", "the post's Conv2d has no padding", lambda spec: any(p != (0, 0) for p in spec.padding)),
    Limit("dilation > 1", "the post's Conv2d has no dilation", lambda spec: any(d != 1 for d in spec.dilation)),
    Limit("groups > 1", "the post's Conv2d has no groups", lambda spec: spec.groups != 1),
    Limit("different strides per dim", "the post's Conv2d takes one stride for both dims",
          lambda spec: len(set(spec.stride)) != 1),
    Limit("transposed", "the post's Conv2d is a convolution; it has no transposed form", lambda spec: spec.transposed),
)


class BlogLoopsBackend(DeclaredLimits):
    name = "blog-loops"
    limits = LIMITS
    deviations = ()

    def version(self) -> str:
        """This package's version first (declared deviations would be matched against the first word)."""
        from importlib.metadata import version

        return f"{version('convparity-blog-loops')} (convparity-blog-loops)"

    def availability(self):
        return None

    def run(self, spec, x, w, b, dy):
        """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None, dy (N, O, OH, OW) -> y, dx, dw, db.

        The post computes in float64 NumPy; inputs are widened to float64 the way it would read them."""
        bias = np.zeros(spec.out_channels) if b is None else np.asarray(b, np.float64)
        conv = Conv2d(stride=spec.stride[0], weight=np.asarray(w, np.float64), bias=bias)
        y = conv(np.asarray(x, np.float64))
        dx = conv.backward(np.asarray(dy, np.float64))
        return y, dx, conv.dw, conv.db if b is not None else None


@hookimpl
def convparity_register_backends(register):
    register(BlogLoopsBackend())
