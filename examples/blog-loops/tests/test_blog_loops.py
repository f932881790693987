"""The example plugin is discovered through its entry point and passes the backend contract suite."""

from importlib.metadata import entry_points

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.contract_suite import BackendContract


def test_installed_entry_point():
    names = {ep.name: ep.value for ep in entry_points(group="convparity")}
    assert names.get("blog-loops") == "convparity_blog_loops.plugin"
    assert "blog-loops" in get_manager().backends()


def test_declares_what_the_post_cannot_do():
    backend = get_manager().backends()["blog-loops"]
    padded = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(5, 5), kernel_size=(3, 3), padding=1)
    assert backend.supports(padded) == "padding: the post's Conv2d has no padding"
    assert backend.supports(padded.replace(padding=0)) is None


class TestBlogLoops(BackendContract):
    backend_name = "blog-loops"
