"""Model architectures, weights manifest, weights resolver and checkpoint loading of convnets-hub."""
