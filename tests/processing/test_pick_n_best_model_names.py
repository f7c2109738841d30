"""``pick_n_best(model=...)``: a fine-tuned model's own class names, as ``prepare_input_from_uri`` takes its
preprocessing from ``model=``."""

import types

import pytest
import torch
from convnets_hub.processing import ConvNetsProcessingUtils
from convnets_hub.processing.errors import ProcessingArgumentError

SCORES = torch.tensor([[0.1, 0.7, 0.2]])


def test_the_class_names_come_from_the_model(hubconf, capsys):
    model = hubconf.lenet5(num_classes=3)
    model.pretrained_cfg = {**model.pretrained_cfg, "label_names": ("cat", "dog", "bird")}  # as a fine-tuned one
    utils = ConvNetsProcessingUtils()
    assert utils.pick_n_best(SCORES, n=2, model=model) == [[("dog", "70.0%"), ("bird", "20.0%")]]
    assert capsys.readouterr().out == "sample 0: [('dog', '70.0%'), ('bird', '20.0%')]\n"
    assert utils.pick_n_best(SCORES, n=1, verbose=False) == [[("class 1", "70.0%")]], "without model=: as before"
    assert utils.pick_n_best(SCORES, n=1, labels=["a", "b", "c"], model=model, verbose=False) == [[("b", "70.0%")]]


def test_a_model_of_other_classes_or_without_a_cfg_is_refused():
    utils = ConvNetsProcessingUtils()
    four = types.SimpleNamespace(pretrained_cfg={"num_classes": 4, "label_names": ("a", "b", "c", "d")})
    with pytest.raises(ProcessingArgumentError, match=r"^model.pretrained_cfg has 4 names for predictions of 3 "):
        utils.pick_n_best(SCORES, model=four)
    with pytest.raises(ProcessingArgumentError, match=r"^model=Linear: has no pretrained_cfg"):
        utils.pick_n_best(SCORES, model=torch.nn.Linear(2, 3))
