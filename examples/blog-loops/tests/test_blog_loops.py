"""The example plugin is discovered through its entry point and passes the backend contract suite."""

from importlib.metadata import entry_points

import convparity
from convparity.plugin import BackendContract, ConvSpec


def test_installed_entry_point():
    names = {ep.name: ep.value for ep in entry_points(group="convparity")}
    assert names.get("blog-loops") == "convparity_blog_loops.plugin"



def test_declares_what_the_post_cannot_do():
    padded = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(5, 5), kernel_size=(3, 3), padding=1)
    result, rows = convparity.evaluate_case("blog-loops", padded)
    assert {row.status for row in rows} == {"unsupported"}
    assert rows[0].message == "padding: the post's Conv2d has no padding"
    _, rows = convparity.evaluate_case("blog-loops", padded.replace(padding=0))
    assert {row.status for row in rows} == {"pass"}


class TestBlogLoops(BackendContract):
    backend_name = "blog-loops"
