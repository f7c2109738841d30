"""ImageNet-1k's normalization: the mean and standard deviation of its RGB pixels (in [0, 1]).

A module of its own, without torch, so that the model registry reads them cheaply.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
