"""The suite's own setup: which tests the CPU-only machine skips, and how pytest-xdist distributes them."""

import conftest
import pytest
import torch


class _Item:
    """What the skip hook sees of a collected test: its keywords and its markers."""

    def __init__(self, keywords: set[str], markers: set[str]) -> None:
        self.keywords, self.markers, self.added = keywords, markers, []

    def get_closest_marker(self, name: str):
        return pytest.Mark(name, (), {}) if name in self.markers else None

    def add_marker(self, marker) -> None:
        self.added.append(marker.mark.kwargs.get("reason"))


def test_without_a_gpu_only_cuda_marked_tests_are_skipped_not_a_parameter_named_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    marked = _Item({"test_on_the_gpu", "cuda"}, {"cuda"})
    parameter = _Item({"test_cuda_without_a_gpu_says_so[cuda]", "cuda"}, {"parametrize"})
    conftest.pytest_collection_modifyitems(None, [marked, parameter])
    assert marked.added == ["needs a CUDA GPU"] and parameter.added == []


class _Config:
    """What the distribution hook sees of pytest's configuration: its options, and a worker's input."""

    def __init__(self, dist: str, workerinput: dict | None = None) -> None:
        self.option = type("Options", (), {"dist": dist, "loadgroup": False})()
        self.lines: list[str] = []
        if workerinput is not None:
            self.workerinput = workerinput

    def addinivalue_line(self, name: str, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize(("dist", "expected"), [("load", "loadgroup"), ("no", "no"), ("each", "each")])
def test_n_workers_keep_each_xdist_group_on_one_worker(dist, expected):
    """`pytest -n 2` distributes with "load"; the suite makes it "loadgroup" (the Ray tests share one Ray), and a
    worker learns from its controller that it marks its tests' groups; other choices are left as given."""
    controller = _Config(dist)
    conftest.pytest_configure(controller)
    assert controller.option.dist == expected
    node = type("Node", (), {"config": controller, "workerinput": {}})()
    conftest.pytest_configure_node(node)
    worker = _Config("no", node.workerinput)
    conftest.pytest_configure(worker)
    assert worker.option.loadgroup == (expected == "loadgroup")
