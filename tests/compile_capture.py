"""What torch.compile gives Inductor, captured without Inductor: the proofs that let a small model, compiled
for real, stand for a big one (tests/models/archs/test_classic.py, tests/models/runtime/test_optimize.py).

Inductor's cost on the CPU is its C++ compilation, kernel by kernel; a model is captured (Dynamo, then
AOTAutograd with Inductor's decompositions) in a fraction of it. What Inductor lowers is each operator of
the captured graphs and what it fuses is each operator feeding another: a model whose operators and pairs are
all among those of a model compiled for real (:func:`operators`) asks Inductor nothing that was not compiled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch


@contextlib.contextmanager
def recording_compile() -> Iterator[list[torch.fx.GraphModule]]:
    """Within it, ``torch.compile`` (as ``CompiledModel`` calls it) captures each model whole (Dynamo's fullgraph:
    a graph break raises) and gives a recording backend in Inductor's place the aten graphs that Inductor would get
    (the same capture and decompositions, no code generated), which then run eagerly. Yields the recorded graphs."""
    import torch._inductor.lowering  # Inductor's decompositions refer to its lowerings
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func
    from torch._inductor.decomposition import select_decomp_table

    graphs = []

    def record(graph: torch.fx.GraphModule, inputs) -> object:
        graphs.append(graph)
        return make_boxed_func(graph.forward)

    backend = aot_autograd(fw_compiler=record, decompositions=select_decomp_table())
    # Dynamo keeps the graphs of every model compiled in this process per code object (a model's forward, the input
    # cast hook) and, past its recompile limit (8), fails instead of capturing one more: start afresh.
    torch.compiler.reset()
    compile_ = torch.compile
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "compile", lambda model, mode=None, dynamic=None: compile_(
            model, backend=backend, fullgraph=True, dynamic=dynamic))
        yield graphs


def operators(graphs: list[torch.fx.GraphModule]) -> set[str]:
    """Each operator of ``graphs`` and each operator feeding another ("a -> b"): what Inductor lowers and fuses."""
    found = set()
    for graph in graphs:
        for node in (node for node in graph.graph.nodes if node.op == "call_function"):
            found.add(str(node.target))
            found.update(f"{node.target} -> {user.target}" for user in node.users if user.op == "call_function")
    return found
