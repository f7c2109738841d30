"""An exported ONNX file carries its model's class names and preprocessing, and README's lines classify a photo
with onnxruntime alone (torch hidden) as the hub does."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO
from convnets_hub.models.deploy.exporters import export_model
from convnets_hub.models.deploy.onnx_metadata import onnx_metadata
from convnets_hub.processing import ConvNetsProcessingUtils
from photos import GRACE_HOPPER

README_EXAMPLE = re.search(r"These lines classify a photo with onnxruntime,.*?```python\n(.*?)```",
                           (REPO / "README.md").read_text(), re.DOTALL).group(1)
_RUN_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` fails: the example needs none of it
source = open(sys.argv[1]).read()
namespace = {}
exec(source, namespace)
import numpy as np
np.save(sys.argv[2], namespace["x"])
np.save(sys.argv[3], namespace["logits"])
"""


@pytest.fixture(scope="module")
def exported(hubconf, tmp_path_factory):
    torch.manual_seed(0)
    model = hubconf.resnet18_ssl(pretrained=False).eval()
    model.pretrained_cfg = {**model.pretrained_cfg, "label_names": tuple(f"kind {i}" for i in range(1000))}
    path = export_model(model, tmp_path_factory.mktemp("onnx") / "model.onnx", "onnx")
    return model, path


def test_the_onnx_file_says_its_classes_and_preprocessing(exported):
    model, path = exported
    entries = onnx.load(str(path)).metadata_props
    props = {prop.key: json.loads(prop.value) for prop in entries}
    assert len(entries) == len(props)  # each key once
    cfg = model.pretrained_cfg
    assert props == {"class_names": [f"kind {i}" for i in range(1000)], "input_size": [3, 224, 224],
                     "mean": list(cfg["mean"]), "std": list(cfg["std"]), "interpolation": "bilinear",
                     "crop_pct": 0.875, "input_name": "input", "output_name": "logits",
                     "entrypoint": "resnet18_ssl", "model_type": None, "weights": None}


def test_the_torch_export_based_exporter_carries_the_same_metadata_once(hubconf, tmp_path):
    """dynamo=True: the same entries, each key once."""
    pytest.importorskip("onnxscript", reason="dynamo=True needs onnxscript (requirements-export.txt)")
    model = hubconf.lenet5().eval()
    entries = onnx.load(str(export_model(model, tmp_path / "lenet5.onnx", "onnx", dynamo=True))).metadata_props
    props = {prop.key: json.loads(prop.value) for prop in entries}
    assert len(entries) == len(props) and props["entrypoint"] == "lenet5" and props["input_size"] == [1, 32, 32]
    assert props == {key: json.loads(value) for key, value in onnx_metadata(model).items()}


def test_readme_example_classifies_with_onnxruntime_alone(exported, tmp_path):
    model, path = exported
    script = tmp_path / "example.py"
    script.write_text(README_EXAMPLE.replace('"model.onnx"', repr(str(path))).replace('"photo.jpg"',
                                                                                         repr(str(GRACE_HOPPER))))
    result = subprocess.run([sys.executable, "-c", _RUN_WITHOUT_TORCH, str(script), str(tmp_path / "x.npy"),
                             str(tmp_path / "logits.npy")], check=False, capture_output=True, text=True, timeout=120,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    x, logits = np.load(tmp_path / "x.npy"), np.load(tmp_path / "logits.npy")
    hub_input = ConvNetsProcessingUtils().prepare_input_from_uri(GRACE_HOPPER, model=model).numpy()
    assert x.shape == hub_input.shape == (1, 3, 224, 224)
    assert np.abs(x - hub_input).mean() < 0.02, "Pillow's resize is close to the hub's preprocessing"
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.allclose(logits, expected, rtol=1e-3, atol=1e-4)
    assert result.stdout == f"kind {int(expected.argmax())}\n"
