"""Against NVIDIA's own code: their hub example runs unchanged, and our fast decode stays within 0.02 of their pixels."""

import io
from pathlib import Path

import matplotlib
import pytest
import skimage
import torch
from conftest import Reply
from convnets_hub.models.weights.manifest import load_manifest
from convnets_hub.processing import ConvNetsProcessingUtils
from PIL import Image
from torchvision import transforms
from upstream_files import write_mirror

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
SKIMAGE = Path(skimage.data_dir)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
NVIDIA_TRANSFORMS = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])


def large_jpeg(name: str, size: int) -> bytes:
    image = Image.open(SKIMAGE / name).convert("RGB")
    image = image.resize((size, round(size * image.height / image.width)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


PHOTOS = {
    "grace_hopper.jpg": GRACE_HOPPER.read_bytes(),
    "retina.jpg": (SKIMAGE / "retina.jpg").read_bytes(),
    "chelsea.png": (SKIMAGE / "chelsea.png").read_bytes(),
    "retina-2048.jpg": large_jpeg("retina.jpg", 2048),
    "hubble-1600.jpg": large_jpeg("hubble_deep_field.jpg", 1600),
    "astronaut-1280.jpg": large_jpeg("astronaut.png", 1280),
}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_mean_pixel_difference_from_nvidia_pipeline_is_at_most_002(name):
    data = PHOTOS[name]
    theirs = NVIDIA_TRANSFORMS(Image.open(io.BytesIO(data)).convert("RGB"))
    ours = ConvNetsProcessingUtils().prepare_input_from_uri(data)[0] * STD + MEAN
    difference = (ours - theirs).abs().mean().item()
    assert difference <= 0.02, f"{name}: mean absolute difference {difference:.4f}"


def test_nvidia_hub_example_runs_unchanged(repo_dir, hub_home, server, tmp_path, monkeypatch):
    """NVIDIA's ResNeXt hub page code, verbatim except the repository, source="local" and local URLs."""
    entry = load_manifest().default("nvidia_resneXt")
    manifest = write_mirror(tmp_path / "mirror", [entry.id])
    monkeypatch.setenv("CONVNETS_HUB_MANIFEST", str(manifest))
    monkeypatch.setenv("CONVNETS_HUB_MIRROR", str(tmp_path / "mirror"))
    urls = [server.serve(f"/coco/{i}.jpg", Reply(body=data, headers={"Content-Type": "image/jpeg"}))
            for i, data in enumerate([PHOTOS["grace_hopper.jpg"], PHOTOS["retina.jpg"], PHOTOS["astronaut-1280.jpg"],
                                      PHOTOS["hubble-1600.jpg"]])]
    repo = str(repo_dir)

    resneXt = torch.hub.load(repo, 'nvidia_resneXt', source="local")
    utils = torch.hub.load(repo, 'nvidia_convnets_processing_utils', source="local")

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    resneXt.eval().to(device)

    uris = urls

    batch = torch.cat(
        [utils.prepare_input_from_uri(uri) for uri in uris]
    ).to(device)

    with torch.no_grad():
        output = torch.nn.functional.softmax(resneXt(batch), dim=1)

    results = utils.pick_n_best(predictions=output, n=5)

    assert batch.shape == (4, 3, 224, 224) and resneXt.pretrained_cfg["id"] == entry.id
    assert len(results) == 4 and all(len(result) == 5 for result in results)
    for result in results:
        for label, score in result:
            assert isinstance(label, str) and score.endswith("%") and 0 <= float(score[:-1]) <= 100
