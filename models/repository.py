"""Where convnets-hub lives: its checkout's files, and its GitHub name that README, docstrings and notebooks use."""

from . import mount

REPO_ROOT = mount.ROOT
"""The checkout this library was imported from."""
MANIFEST_FILE = "weights_manifest.json"

GITHUB_REPO = "convnets-hub/convnets-hub"
"""``owner/name`` for ``torch.hub.load(GITHUB_REPO, ...)``; tests keep README and notebooks equal to it."""

BRANCH = "main"
COLAB_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    """The Google Colab address that opens ``notebooks/<notebook>`` of the repository."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/notebooks/{notebook}"


def colab_badge(notebook: str) -> str:
    """The Markdown "Open in Colab" badge of ``notebooks/<notebook>``."""
    return f"[![Open in Colab]({COLAB_BADGE_IMAGE})]({colab_url(notebook)})"
