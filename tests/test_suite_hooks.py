"""The suite's own setup: which tests the CPU-only machine skips, how pytest-xdist distributes them, that
no test reaches beyond 127.0.0.1, and the mutation runner's selection."""

import errno
import socket
import subprocess
import sys
import time

import conftest
import pytest
import requests
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


def test_tests_marked_start_first_come_first_and_the_rest_keep_their_order():
    first, second, long = _Item({"first"}, set()), _Item({"second"}, set()), _Item({"long"}, {"start_first"})
    items = [first, second, long]
    conftest.pytest_collection_modifyitems(None, items)
    assert items == [long, first, second]


def test_n_workers_keep_each_xdist_group_on_one_worker(request):
    """`pytest -n 2` distributes with "loadgroup" (pyproject.toml), which keeps the Ray tests on one worker."""
    config = request.config
    if hasattr(config, "workerinput"):  # a worker: xdist sets "loadgroup" from its controller's --dist, then "no"
        assert config.option.loadgroup
    else:
        assert config.getoption("dist") == "loadgroup"


def test_a_connection_beyond_127_0_0_1_is_refused_at_once(server):
    start = time.monotonic()
    with pytest.raises(requests.ConnectionError, match="the tests reach only 127.0.0.1, not 192.0.2.1:80"):
        requests.get("http://192.0.2.1/weights.pth", timeout=30)  # TEST-NET-1: no machine answers there
    with socket.socket() as probe:
        assert probe.connect_ex(("192.0.2.1", 80)) == errno.ECONNREFUSED
    assert time.monotonic() - start < 5
    assert requests.get(server.serve("/here", conftest.Reply(body=b"ok")), timeout=30).content == b"ok"


def test_a_mutant_selection_that_matches_nothing_is_refused_before_any_test_runs():
    """Else the runner's baseline would name no test, and pytest would run the whole suite."""
    result = subprocess.run([sys.executable, str(conftest.REPO / "tests" / "mutation" / "run_mutants.py"), "--only",
                             "no mutant is called this"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == ("run_mutants.py: error: --only 'no mutant is called this' matches no "
                                              "mutant's bug or file (--list shows them)")
