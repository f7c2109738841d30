"""Training: ``finetune`` (a hub model adapted to an image folder) and ``validate`` (its accuracy on one).

data.py (image folders, checks, augmentation, sampling), loop.py (steps and epochs), checkpoint.py
(a run on disk), distributed.py (torchrun), finetune.py (the run), validation.py (the measurement).
"""
