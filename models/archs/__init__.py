"""Architectures: the networks themselves, composed from timm's and torchvision's blocks."""
