"""Our packages never collide with another hub repository's top-level ``models`` / ``processing``."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture(scope="module")
def other_repo(tmp_path_factory):
    """A hub repository shaped like yolov5/detr: top-level ``models`` and ``processing`` packages."""
    repo = tmp_path_factory.mktemp("repos") / "other_repo"
    for package in ("models", "processing"):
        (repo / package).mkdir(parents=True)
        (repo / package / "__init__.py").write_text(f"OWNER = 'other {package}'\n")
    (repo / "hubconf.py").write_text(textwrap.dedent("""
        dependencies = []
        from models import OWNER as MODELS_OWNER
        from processing import OWNER as PROCESSING_OWNER

        def owners():
            return MODELS_OWNER, PROCESSING_OWNER
    """))
    return repo


def run(script: str, cwd) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False, cwd=cwd,
                            capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


LOAD_OURS = """
    model = torch.hub.load(OURS, "resnet18_ssl", source="local", pretrained=False)
    utils = torch.hub.load(OURS, "nvidia_convnets_processing_utils", source="local")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
"""


def _prelude(repo_dir, other_repo) -> str:
    return f"""
    import sys, torch
    OURS, OTHER = {str(repo_dir)!r}, {str(other_repo)!r}
    """


def test_ours_work_after_another_models_package_was_imported(repo_dir, other_repo):
    script = _prelude(repo_dir, other_repo) + """
    sys.path.insert(0, OTHER)
    import models, processing
    """ + LOAD_OURS + """
    print(sys.modules["models"].OWNER, "|", sys.modules["processing"].OWNER)
    """
    assert run(script, other_repo.parent) == "other models | other processing"


@pytest.fixture(scope="module")
def second_checkout(repo_dir, other_repo):
    """Another checkout of ours (its library and hubconf), as a second clone or another version."""
    copy = other_repo.parent / "second checkout"
    copy.mkdir()
    for name in ("hubconf.py", "weights_manifest.json"):
        shutil.copy2(repo_dir / name, copy / name)
    for name in ("models", "processing"):
        shutil.copytree(repo_dir / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def ours_then_others(repo_dir, other_repo, second_checkout) -> dict:
    """One process (a process costs 5 s of imports) loads ours, then a second checkout of ours, then the
    other repository, and prints what each test below checks; last, as a Ray driver of the second
    checkout, it pickles what a Ray worker gets (where Ray is installed), into the file ``pickled`` names."""
    pickled = other_repo.parent / "pickled"
    script = _prelude(repo_dir, other_repo) + f"""
    import importlib, importlib.util, json, pickle
    SECOND, PICKLED = {str(second_checkout)!r}, {str(pickled)!r}
    """ + LOAD_OURS + """
    found = {"top-level after ours": sorted(name for name in ("models", "processing") if name in sys.modules)}
    torch.hub.load(SECOND, "resnet18_ssl", source="local", pretrained=False)
    files = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("convnets_hub") or name.endswith("mount.py"):
            files.setdefault(getattr(module, "__file__", None) or str(list(module.__path__)), []).append(name)
    found.update({"files": files, "top-level models": "models" in sys.modules})
    found["owners"] = torch.hub.load(OTHER, "owners", source="local")
    if importlib.util.find_spec("ray") is not None:  # the driver's side of the Ray test below
        import ray
        package = sys.modules[SECOND + "/models/mount.py"].mount().__name__
        engine = importlib.import_module(package + ".models.batch.ray_engine")
        hook = ray.cloudpickle.dumps(engine._worker_setup_hook(ray, None))
        ours = ray.cloudpickle.dumps(importlib.import_module(package + ".models.settings").DownloadSettings.from_env())
        open(PICKLED, "wb").write(pickle.dumps((package, hook, ours)))
    print(json.dumps(found))
    """
    return {**json.loads(run(script, other_repo.parent)), "pickled": pickled}


@pytest.mark.xdist_group("coexistence")  # the two tests of one process, on one pytest-xdist worker
def test_another_repo_works_after_ours_was_loaded(ours_then_others):
    assert ours_then_others["top-level after ours"] == []
    assert ours_then_others["owners"] == ["other models", "other processing"]


@pytest.mark.xdist_group("coexistence")
def test_two_checkouts_side_by_side_mount_their_own_packages(repo_dir, second_checkout, ours_then_others):
    """The second checkout takes convnets_hub_<sha1 of its root>; each file, the mount's included, is loaded
    once, under its checkout's package."""
    files = ours_then_others["files"]
    second = "convnets_hub_" + hashlib.sha1(str(second_checkout).encode()).hexdigest()[:10]
    assert files[str([str(repo_dir)])] == ["convnets_hub"] and files[str([str(second_checkout)])] == [second]
    for root, package in ((repo_dir, "convnets_hub"), (second_checkout, second)):
        mount = str(root / "models" / "mount.py")
        assert sorted(files[mount]) == sorted([mount, f"{package}.models.mount"])
        assert files[str(root / "models" / "hub.py")] == [f"{package}.models.hub"]
    assert not ours_then_others["top-level models"]


@pytest.mark.xdist_group("coexistence")
def test_a_ray_worker_mounts_its_drivers_package_before_it_unpickles(second_checkout, ours_then_others):
    """The worker setup hook goes by value (the worker cannot import it before the mount) and mounts the
    driver's package name, here the second checkout's convnets_hub_<sha1>, over the worker's working directory
    (where Ray unpacks a shipped checkout); then an object of ours unpickles there. The driver is
    ``ours_then_others``'s process, which loaded our first checkout, then the second."""
    pytest.importorskip("ray", reason="the Ray engine needs ray[data] (requirements-batch.txt)")
    pickled = ours_then_others["pickled"]
    worker = """
    import json, pickle, sys
    package, hook, ours = pickle.loads(open(sys.argv[1], "rb").read())
    pickle.loads(hook)()
    module = sys.modules[type(pickle.loads(ours)).__module__]
    print(json.dumps([package, module.__name__, module.__file__, "models" in sys.modules]))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(worker), str(pickled)], check=False,
                            cwd=second_checkout, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    package, module, path, top_level_models = json.loads(result.stdout.strip().splitlines()[-1])
    assert package.startswith("convnets_hub_") and module == f"{package}.models.settings"
    assert path == str(second_checkout / "models" / "settings.py") and not top_level_models
