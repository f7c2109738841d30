"""Image preprocessing and prediction decoding (``nvidia_convnets_processing_utils``)."""
