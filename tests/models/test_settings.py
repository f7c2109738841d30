"""The environment's settings: read in one module, each with its effect, and all of them sent to Ray workers."""

import re
from dataclasses import fields
from types import SimpleNamespace

import pytest
from conftest import REPO
from convnets_hub.models import settings
from convnets_hub.models.batch import ray_engine
from convnets_hub.models.errors import InvalidArgumentError
from convnets_hub.models.settings import ENVIRONMENT, DownloadSettings
from convnets_hub.models.weights.manifest import manifest_path


def test_only_the_settings_module_reads_the_environment():
    """No other module of the library reads os.environ/os.getenv (the distributed launcher's WORLD_SIZE,
    RANK... and the Triton server's LD_LIBRARY_PATH aside), so a setting cannot be missed by the workers."""
    readers = []
    for path in sorted([*(REPO / "models").rglob("*.py"), *(REPO / "processing").rglob("*.py")]):
        if path.name == "settings.py":
            continue
        for line in path.read_text().splitlines():
            if re.search(r"os\.(environ|getenv)", line) and not re.search(r"WORLD_SIZE|RANK|LD_LIBRARY_PATH|PYTHONPATH", line):
                readers.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert readers == []


@pytest.mark.parametrize("field", [field.name for field in fields(DownloadSettings)])
def test_each_download_setting_is_read_from_its_variable(monkeypatch, field):
    monkeypatch.setenv(f"CONVNETS_HUB_{field.upper()}", "7")
    read = DownloadSettings.from_env()
    assert getattr(read, field) == 7
    assert all(getattr(read, other.name) == other.default for other in fields(DownloadSettings) if other.name != field)


def test_a_setting_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("CONVNETS_HUB_RETRIES", "three")
    with pytest.raises(InvalidArgumentError, match=r"^CONVNETS_HUB_RETRIES='three' is not an integer$"):
        DownloadSettings.from_env()
    monkeypatch.setenv("CONVNETS_HUB_RETRIES", "-1")
    with pytest.raises(InvalidArgumentError, match="must not be negative"):
        DownloadSettings.from_env()


def test_offline_mirror_and_manifest_settings(monkeypatch, tmp_path):
    for value, offline in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("CONVNETS_HUB_OFFLINE", value)
        assert settings.is_offline() is offline
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", " http://127.0.0.1:1/w ")
    assert settings.mirror() == "http://127.0.0.1:1/w"
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(tmp_path / "m.json"))
    assert manifest_path() == tmp_path / "m.json"


class _FakeRay:
    """Records what ray.init is given."""

    def __init__(self):
        self.calls = []
        self.cloudpickle = SimpleNamespace(register_pickle_by_value=lambda module: None)

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.calls.append(kwargs)


def test_workers_of_a_ray_cluster_receive_every_setting(monkeypatch, tmp_path):
    """Before: only MANIFEST, MIRROR and OFFLINE reached the cluster's workers, so the download
    timeouts, retries, backoff and lock timeout set on the driver were silently ignored there."""
    values = {name: f"{index + 1}" for index, name in enumerate(ENVIRONMENT)}
    for name, value in {**values, "TORCH_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    ray = _FakeRay()
    assert ray_engine._connect(ray, ray_engine.RaySettings(address="ray://127.0.0.1:1")) is True
    forwarded = ray.calls[0]["runtime_env"]["env_vars"]
    assert forwarded == {**values, "TORCH_HOME": str(tmp_path)}


def test_the_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text()
    assert [name for name in ENVIRONMENT if f"`{name}" not in readme] == []
