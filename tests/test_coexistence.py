"""Our packages never collide with another hub repository's top-level ``models`` / ``processing``."""

import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def other_repo(tmp_path):
    """A hub repository shaped like yolov5/detr: top-level ``models`` and ``processing`` packages."""
    repo = tmp_path / "other_repo"
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


def test_another_repo_works_after_ours_was_loaded(repo_dir, other_repo):
    script = _prelude(repo_dir, other_repo) + LOAD_OURS + """
    assert "models" not in sys.modules and "processing" not in sys.modules, sorted(sys.modules)
    print(torch.hub.load(OTHER, "owners", source="local"))
    """
    assert run(script, other_repo.parent) == "('other models', 'other processing')"
