"""Batch classification of image collections (``python3 -m models classify``).

``inputs`` expands the command's INPUTs into image sources, ``decoding`` turns sources into the
model's input tensors (on the CPU, or JPEGs on the GPU), ``predictor`` turns tensors into result
rows, ``store`` writes the rows as they come and publishes the final file atomically, and the
engines ``local`` and ``ray_engine`` drive them on one machine or on a Ray cluster.
"""
