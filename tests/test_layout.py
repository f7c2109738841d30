"""The house: one copy of every module whatever the way in, layers that point down, one place per fact."""

import ast
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO
from convnets_hub.models.errors import (
    InvalidArgumentError,
    UnknownEntrypointError,
    WeightsError,
    WeightsUnavailableError,
)
from convnets_hub.models.weights.manifest import SCHEMA_VERSION, load_manifest

EVERY_WAY_IN = """
import contextlib, importlib, io, json, os, pkgutil, sys
import models  # what `python3 -m models` imports first
cli = importlib.import_module(models.__name__ + ".cli")
outputs = {}
commands = [["list"], ["help", "resnet18_ssl"], ["readme"], ["pin-weights", "--help"],
            ["smoke", "--entrypoint", "lenet5"],
            ["export", "--entrypoint", "lenet5", "--format", "onnx", "--output", "lenet5.onnx"],
            ["classify", "photo.png", "--entrypoint", "lenet5", "--output", "rows.jsonl"],
            ["serve", "--entrypoint", "lenet5", "--http-port", "0"]]
for argv in commands:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            outputs[argv[0]] = cli.main(argv)
        except SystemExit as exit:  # --help
            outputs[argv[0]] = exit.code
import torch
torch.hub.load(os.environ["REPO"], "resnet18_ssl", source="local", pretrained=False)
torch.hub.load(os.environ["REPO"], "nvidia_convnets_processing_utils", source="local")
for info in pkgutil.walk_packages(models.__path__, models.__name__ + "."):
    if not info.name.endswith(".__main__"):  # that one runs the command line
        importlib.import_module(info.name)
names = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and os.path.realpath(path).startswith(os.environ["REPO"] + os.sep):
        names.setdefault(os.path.realpath(path), []).append([name, id(module)])
print(json.dumps({"outputs": outputs, "names": names,
                  "alias": sys.modules["models"] is sys.modules["convnets_hub.models"]}))
"""


def test_every_way_in_loads_each_module_once(tmp_path):
    """The command line's every command, torch.hub.load and an import of every module, in one process:
    no file of the checkout is loaded twice (the top-level name ``models`` that ``python3 -m models``
    imports is the mounted package itself, not a copy)."""
    from PIL import Image

    Image.new("L", (40, 40), 128).save(tmp_path / "photo.png")
    result = subprocess.run([sys.executable, "-c", EVERY_WAY_IN], check=False, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "REPO": str(REPO), "PYTHONPATH": str(REPO),
                                              "CONVNETS_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["outputs"] == {"list": 0, "help": 0, "readme": 0, "pin-weights": 0, "smoke": 0, "export": 0,
                                "classify": 0, "serve": 2}
    assert found["alias"], "top-level models must be the mounted package itself"
    twice = {path: names for path, names in found["names"].items() if len({id_ for _, id_ in names}) > 1}
    assert twice == {}, f"modules loaded more than once: {twice}"
    renamed = {os.path.relpath(path, REPO): sorted(name for name, _ in names)
               for path, names in found["names"].items() if len(names) > 1}
    mount = os.path.join(REPO, "models", "mount.py")  # its key in sys.modules: every way in finds it there
    assert renamed == {os.path.join("models", "__init__.py"): ["convnets_hub.models", "models"],
                       os.path.join("models", "mount.py"): sorted([mount, "convnets_hub.models.mount"])}
    loaded = {os.path.relpath(path, REPO) for path in found["names"]}
    assert {os.path.join("models", "cli", "classify.py"), os.path.join("processing", "nvidia_api.py"),
            os.path.join("models", "deploy", "exporters.py")} <= loaded
    assert "hubconf.py" not in loaded, "the library imports hubconf (torch.hub and the mount only run it)"


LAYERS = {"processing": 0, "models": 1, "models.mount": 1, "models.errors": 1, "models.repository": 1, "models.files": 1, "models.settings": 1, "models.release": 1, "models.wording": 1,
          "models.archs": 2, "models.weights": 2, "models.runtime": 3,
          "models.registry": 4, "models.docs": 4, "models.hub": 4, "models.builder": 4, "models.factory": 4,
          "models.pretrained_config": 4,
          "models.hub_check": 5, "models.sharing": 6, "models.batch": 6, "models.deploy": 6, "models.train": 6,
          "models.cli": 7, "models.__main__": 7}
"""The layers of the library, bottom up: a module imports its own package and the layers below it."""


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    prefix = next(".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in LAYERS)
    return LAYERS[prefix], prefix


HUBCONF_REFERENCE = re.compile(r"hubconf(\.\w+)*(:\w+)?")
"""A string that names hubconf to load it: ``"hubconf"``, ``"hubconf.py"``, ``"hubconf._package"`` (a Ray hook)."""


def _imports(path):
    """(importing module, imported module) for every import of a file of the library: relative imports,
    absolute imports of our own packages (under any of their names: ``models``, ``processing``,
    ``convnets_hub.models``...), and the registry's lazy references (``Lazy("archs.resnet", ...)``);
    and (module, ``hubconf``) wherever code names hubconf: a name, or a string such as a Ray hook's
    ``"hubconf._package"`` or the file ``"hubconf.py"`` (prose in docstrings and messages aside)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    package = parts[:-1]
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and HUBCONF_REFERENCE.fullmatch(node.value)) or getattr(node, "id", None) == "hubconf" \
                or getattr(node, "attr", None) == "hubconf":
            yield module, "hubconf"
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            yield from ((module, f"{base}.{alias.name}") for alias in node.names) if node.module is None \
                else [(module, base)]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                own = name.removeprefix("convnets_hub.")
                if own.split(".")[0] in ("models", "processing", "hubconf"):
                    yield module, own
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Lazy" and node.args \
                and isinstance(node.args[0], ast.Constant):
            yield module, f"models.{node.args[0].value}"


def _library_files():
    return sorted([*(REPO / "models").rglob("*.py"), *(REPO / "processing").rglob("*.py")])


def test_imports_point_down_the_layers():
    """processing imports nothing of models; archs and weights nothing above them; nothing outside the
    command line imports it; nothing imports or names hubconf. Absolute imports, the registry's lazy
    references and strings naming hubconf count as imports."""
    upward = []
    for path in _library_files():
        for module, target in _imports(path):
            if target.split(".")[0] == "hubconf":
                upward.append(f"{module} -> {target}")
                continue
            (layer, package), (target_layer, target_package) = _layer(module), _layer(target)
            if target_layer > layer and package != target_package:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_layer_check_sees_every_kind_of_import(tmp_path):
    """The import reader finds relative, absolute and lazy references (else the check above could not fail)."""
    library = tmp_path / "models"
    library.mkdir()
    (library / "probe.py").write_text('from .cli import main\nimport convnets_hub.models.train\nfrom hubconf import x\n'
                                      'import processing.decode\nspec = Lazy("archs.resnet", "build_resnet")\n')
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        found = {target for _, target in _imports(library / "probe.py")}
    finally:
        REPO = saved
    assert found == {"models.cli", "models.train", "hubconf", "processing.decode", "models.archs.resnet"}


@pytest.mark.parametrize("code", ['WORKER_SETUP_HOOK = "hubconf._package"',
                                  'runpy.run_path(str(ROOT / "hubconf.py"))["_import"]("models")',
                                  'importlib.import_module("hubconf")', "entrypoint = getattr(hubconf(), name)"])
def test_the_layer_check_sees_hubconf_named_in_code(tmp_path, code):
    """The library may not reach hubconf by a string either (the Ray hook that Ray's workers imported, a clone's
    ``import models`` that ran hubconf.py); prose that mentions hubconf.py is no reference."""
    library = tmp_path / "models"
    library.mkdir()
    (library / "probe.py").write_text(f'"""Made by hubconf.py."""\nHELP = "a model entrypoint of hubconf.py"\n{code}\n')
    (library / "prose.py").write_text('"""Made by hubconf.py."""\nHELP = "a model entrypoint of hubconf.py"\n')
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        found = {target for _, target in _imports(library / "probe.py")}
        prose = list(_imports(library / "prose.py"))
    finally:
        REPO = saved
    assert found == {"hubconf"} and prose == []


def test_every_module_has_a_layer():
    """A new package or top-level module of the library must be given its place in LAYERS."""
    homeless = []
    for path in _library_files():
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        prefix = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in LAYERS), None)
        if prefix is None or (prefix == "models" and module != "models"):
            homeless.append(module)
    assert homeless == []


def test_every_error_is_caught_by_its_built_in():
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(UnknownEntrypointError, ValueError)
    assert issubclass(WeightsUnavailableError, RuntimeError) and issubclass(WeightsUnavailableError, OSError)
    assert issubclass(WeightsError, RuntimeError)
    assert str(WeightsUnavailableError("no source gave x.pth")) == "no source gave x.pth"


def test_the_printed_error_name_is_importable_where_it_was_raised(tmp_path):
    script = textwrap.dedent(f"""
        import importlib, torch
        try:
            torch.hub.load({str(REPO)!r}, "resnet18_ssl", source="local")
        except OSError as error:  # WeightsUnavailableError: offline, nothing cached
            module, _, name = f"{{type(error).__module__}}.{{type(error).__name__}}".rpartition(".")
            print(module, getattr(importlib.import_module(module), name) is type(error))
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300,
                            env={**os.environ, "CONVNETS_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["convnets_hub.models.errors", "True"]


def test_a_manifest_of_a_newer_schema_is_refused_clearly(tmp_path):
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    newer = tmp_path / "manifest.json"
    newer.write_text(json.dumps({**raw, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(InvalidArgumentError, match=rf"schema_version {SCHEMA_VERSION + 1}, newer than this checkout reads \({SCHEMA_VERSION}\)"):
        load_manifest(newer)
    unversioned = tmp_path / "unversioned.json"
    unversioned.write_text(json.dumps({"entries": raw["entries"]}))
    with pytest.raises(InvalidArgumentError, match="schema_version"):
        load_manifest(unversioned)


def test_every_manifest_field_is_read():
    """Each field of an entry is a field of WeightsEntry, and each of those is read outside manifest.py."""
    from convnets_hub.models.weights.manifest import WeightsEntry

    fields = set(WeightsEntry.__dataclass_fields__)
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    assert set().union(*(entry.keys() for entry in raw["entries"])) <= fields
    code = "\n".join(path.read_text() for path in (REPO / "models").rglob("*.py") if path.name != "manifest.py")
    unread = sorted(name for name in fields if f".{name}" not in code)
    assert unread == []
