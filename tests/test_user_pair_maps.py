"""A user's pair whose outputs are not one row per input: a segmentation map (N,K,H,W in
PyTorch, N,H,W,K in Keras) and per-step scores (N,L,K in both). The losses average over every
position, as each framework's own loss does; the numbers are checked against plain code."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import comparator
from adapters.own_pair.outputs import keras_off_the_output, select_outputs
from adapters.own_pair.setup import keras_outputs_layout
from comparator.errors import UsageError
from tests import map_pair_models as models
from tests.conftest import refereed_pair

X = models.images()


def keras_port(torch_model):
    """The segmentation twin holding torch_model's weights, ported by hand."""
    keras_model = models.keras_segmentation_twin()
    state = {name: t.detach().numpy() for name, t in torch_model.state_dict().items()}
    for name in ("conv", "classify"):
        keras_model.get_layer(name).set_weights([state[f"{name}.weight"].transpose(2, 3, 1, 0),
                                                 state[f"{name}.bias"]])
    keras_model.get_layer("bn").set_weights([state[f"bn.{k}"] for k in
                                             ("weight", "bias", "running_mean", "running_var")])
    return keras_model


@pytest.fixture(scope="module")
def segmentation():
    return comparator.compare_pair(models.seeded(models.SegmentationNet),
                                   models.keras_segmentation_twin(), X,
                                   port_weights="pytorch-to-keras")


def run(report, run_id):
    (found,) = [r for r in report.runs if r.id == run_id]
    return found


def test_a_map_is_compared_in_pytorchs_layout(segmentation):
    inputs = segmentation.settings["inputs"]
    assert inputs["outputs_shape"] == [4, models.CLASSES, models.SIZE, models.SIZE]
    assert inputs["keras_outputs"] == "channels_last"
    port = segmentation.checks[0]
    assert port.name == "port:keras_vs_pytorch_eval_logits" and port.value < 1e-6


def test_the_maps_loss_is_each_frameworks_own_per_pixel_cross_entropy(segmentation):
    torch_model = models.seeded(models.SegmentationNet).eval()
    with torch.no_grad():
        outputs = torch_model(torch.from_numpy(X))
    labels = outputs.argmax(dim=1)  # the PyTorch model's own prediction at every pixel
    expected = float(F.cross_entropy(outputs, labels))
    keras_outputs = keras_port(torch_model).predict(np.moveaxis(X, 1, -1), verbose=0)
    keras_loss = float(models.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)(labels.numpy(), keras_outputs))
    assert run(segmentation, "pytorch:train").losses.inference_before == pytest.approx(
        expected, rel=1e-6)
    assert run(segmentation, "keras:train").losses.inference_before == pytest.approx(
        keras_loss, rel=1e-6)

    torch_model.train()
    torch_model.drop.eval()
    with torch.no_grad():
        step = float(F.cross_entropy(torch_model(torch.from_numpy(X)), labels))
    assert run(segmentation, "pytorch:train").losses.train_step_without_dropout == \
        pytest.approx(step, rel=1e-6)


def equivalence(report, a, b):
    (found,) = [e for e in report.equivalences if (e.a, e.b) == (a, b)]
    return found


def test_the_same_recipe_trains_a_map_to_the_same_weights(segmentation):
    assert equivalence(segmentation, "keras:train", "pytorch:train").max_diff < 1e-5
    assert equivalence(segmentation, "keras:trainable_false",
                       "pytorch:eval_requires_grad").max_diff < 1e-5


def test_fit_overrides_training_false_on_a_map_too(segmentation):
    """Keras 3.15.1's fit() passes training=True to every layer of a functional model, over
    the training=False the recipe called the frozen model with."""
    training_false, train = run(segmentation, "keras:training_false"), run(segmentation,
                                                                          "keras:train")
    assert training_false.losses.train_step == train.losses.train_step
    assert training_false.modes.bn_batch_stats == training_false.modes.dropout_active == 1
    apart = equivalence(segmentation, "keras:training_false", "pytorch:eval")
    assert apart.expected and not apart.equivalent and apart.max_diff > 1e-3
    assert "BatchNorm layers using batch statistics: 1 vs 0" in apart.differences


def test_a_maps_regression_targets_reach_keras_channels_last():
    targets = np.random.default_rng(1).standard_normal(
        (4, models.CLASSES, models.SIZE, models.SIZE)).astype(np.float32)
    report = comparator.compare_pair(models.seeded(models.SegmentationNet),
                                     models.keras_segmentation_twin(), X, targets, loss="mse",
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    torch_model = models.seeded(models.SegmentationNet).eval()
    with torch.no_grad():
        expected = float(F.mse_loss(torch_model(torch.from_numpy(X)), torch.from_numpy(targets)))
    for run_id in ("pytorch:train", "keras:train"):
        assert run(report, run_id).losses.inference_before == pytest.approx(expected, rel=1e-6)
    (same,) = report.equivalences
    assert same.max_diff < 1e-5


def test_per_step_scores_take_one_label_per_step():
    x = models.sequences()
    report = comparator.compare_pair(models.seeded(models.SequenceTagger),
                                     models.keras_sequence_tagger_twin(), x,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["inputs"]["keras_outputs"] == "as_given"
    assert report.settings["inputs"]["outputs_shape"] == [4, models.STEPS, models.CLASSES]
    with torch.no_grad():
        outputs = models.seeded(models.SequenceTagger).eval()(torch.from_numpy(x))
    expected = float(F.cross_entropy(outputs.reshape(-1, models.CLASSES),
                                     outputs.argmax(dim=-1).reshape(-1)))
    for run_id in ("pytorch:train", "keras:train"):
        assert run(report, run_id).losses.inference_before == pytest.approx(expected, rel=1e-6)


def test_an_onnx_graph_in_keras_layout_referees_the_map(tmp_path):
    """A graph taking and giving channels-last arrays, as a Keras export does."""
    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = models.seeded(models.SegmentationNet).eval()

        def forward(self, x):
            return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    path = str(tmp_path / "map.onnx")
    torch.onnx.export(ChannelsLast(), (torch.from_numpy(np.moveaxis(X, 1, -1).copy()),), path,
                      dynamo=False)
    report = comparator.compare_pair(models.seeded(models.SegmentationNet),
                                     models.keras_segmentation_twin(), X, onnx=path,
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    reference = report.references["onnx:file"]
    assert reference["input_layout"] == "channels-last (Keras's layout)"
    assert reference["inference_before"] == pytest.approx(
        run(report, "pytorch:train").losses.inference_before, rel=1e-5)
    checks = {c.name: c for c in report.checks}
    for name in ("pytorch", "keras"):
        assert checks[f"onnx:file_vs_{name}_eval_logits"].value < 1e-5


def test_labels_of_the_wrong_shape_are_one_line():
    with pytest.raises(UsageError, match=r"labels must be 4 x 8 x 8 integers \(one per output "
                                         r"position\), got int64 of shape \(4,\)") as caught:
        comparator.compare_pair(models.seeded(models.SegmentationNet),
                                models.keras_segmentation_twin(), X, np.arange(4),
                                port_weights="pytorch-to-keras")
    assert "\n" not in str(caught.value)


def test_where_both_layouts_fit_the_values_decide():
    torch_out = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    assert keras_outputs_layout(torch_out, np.moveaxis(torch_out, 1, -1)) == "channels_last"
    assert keras_outputs_layout(torch_out, torch_out.copy()) == "as_given"
    assert keras_outputs_layout(torch_out, np.zeros((2, 3, 4))) is None
    rows = torch_out[:, 0]
    assert keras_outputs_layout(rows, rows) == "channels_last"  # N,K: one layout


class _MapAndScores(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = models.seeded(models.SegmentationNet)

    def forward(self, x):
        scores = self.net(x)
        return scores, scores.mean((2, 3))


def _keras_map_and_scores():
    inputs = models.keras.Input((models.SIZE, models.SIZE, 3))
    scores = models.keras_segmentation_twin()(inputs)
    pooled = models.layers.GlobalAveragePooling2D()(scores)
    return models.keras.Model(inputs, [scores, pooled])


@pytest.mark.parametrize("pair, message", [
    (lambda: (_MapAndScores(), models.keras_segmentation_twin()),
     "the PyTorch model returns a tuple of 2 outputs; the comparison takes models with one "
     "output"),
    (lambda: (models.seeded(models.SegmentationNet), _keras_map_and_scores()),
     "the Keras model returns a list of 2 outputs; the comparison takes models with one "
     "output"),
])
def test_a_model_with_several_outputs_is_one_line(pair, message):
    torch_model, keras_model = pair()
    with pytest.raises(UsageError, match=message) as caught:
        comparator.compare_pair(torch_model, keras_model, X)
    assert "\n" not in str(caught.value)


def _returns_a_dict(module) -> bool:
    with torch.no_grad():
        return isinstance(module.eval()(torch.from_numpy(X)), dict)


def test_output_compares_one_of_a_dicts_outputs_and_its_hook_goes_afterwards():
    torch_model = models.seeded(models.SegmentationWithAux)
    report = comparator.compare_pair(torch_model, models.keras_segmentation_with_aux_twin(), X,
                                     output="out", port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    # The aux head's weights do not reach "out": Keras's part of the graph has no aux layer.
    assert report.settings["pair"]["output"] == {"pytorch": "out", "keras": "out",
                                                 "left_out": ["aux"], "keras_left_out": []}
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert report.checks[0].value < 1e-6
    with torch.no_grad():
        out = models.seeded(models.SegmentationWithAux).eval()(torch.from_numpy(X))["out"]
    expected = float(F.cross_entropy(out, out.argmax(dim=1)))
    for run_id in ("pytorch:train", "keras:train"):
        assert run(report, run_id).losses.inference_before == pytest.approx(expected, rel=1e-6)
    assert _returns_a_dict(torch_model)


def test_output_leaves_a_subclassed_keras_models_other_head_out_of_the_pairing():
    """A subclassed model keeps its aux head as a layer whichever output is taken: the head
    is left out of the pairing on the Keras side as PyTorch's is on its own."""
    report = comparator.compare_pair(models.seeded(models.SegmentationWithAux),
                                     models.keras_subclassed_segmentation_with_aux_twin(), X,
                                     output="out", port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["pair"]["output"] == {"pytorch": "out", "keras": "out",
                                                 "left_out": ["aux"], "keras_left_out": ["aux"]}
    assert report.settings["pair"]["pairing"] == {"paired_layers": 3}
    assert report.checks[0].value < 1e-6
    (same,) = [e for e in report.equivalences if e.a == "keras:train"]
    assert same.max_weight_diff < 1e-6


def test_finding_keras_layers_off_the_output_leaves_every_flag_as_it_was():
    twin = models.keras_subclassed_segmentation_with_aux_twin()
    twin.bn.trainable = False
    torch_model = models.seeded(models.SegmentationWithAux)
    wrapper, release = select_outputs(torch_model, twin, "out", "out", X.shape[2:] + (3,))
    flags = [v.value.requires_grad for v in twin.weights]
    try:
        assert keras_off_the_output(wrapper, np.moveaxis(X, 1, -1)) == ["aux"]
    finally:
        release()
    assert [v.value.requires_grad for v in twin.weights] == flags
    assert flags.count(False) == 4  # the frozen BatchNorm's four variables


def test_a_freeze_that_trains_only_another_outputs_head_is_one_line():
    with pytest.raises(UsageError, match=r"--freeze backbone leaves aux to train, and no weight "
                                         r"of it reaches the output --output out chose") as caught:
        comparator.compare_pair(models.seeded(models.SegmentationWithAux),
                                models.keras_subclassed_segmentation_with_aux_twin(), X,
                                output="out", freeze="backbone:conv")
    assert "\n" not in str(caught.value)


def _refereed(output: str, cache_dir: str):
    """The referee's exports of a --output comparison (the ONNX exports of both models)."""
    report, result = refereed_pair(cache_dir, pytorch=models.seeded(models.SegmentationWithAux),
                                   keras=models.keras_segmentation_with_aux_twin(),
                                   output=output, port_weights="pytorch-to-keras", x=X)
    assert not result.failed, result.reasons
    return report, result.references["onnx:eval"]


def test_each_output_has_its_own_onnx_exports(tmp_path):
    """The cache keys the exports by the output chosen: the PyTorch module is the same."""
    for output, classes in (("out", models.CLASSES), ("aux", 2)):
        report, reference = _refereed(output, str(tmp_path))
        assert not any(e["cached"] or e["rebuilt"] for e in reference["exports"].values())
        assert report.settings["inputs"]["outputs_shape"] == [4, classes, 8, 8]
        assert set(reference["losses"]) == {"pytorch", "keras"}
        for loss in reference["losses"].values():
            assert loss == pytest.approx(run(report, "pytorch:eval").losses.inference_before,
                                         rel=1e-5)
    _, again = _refereed("out", str(tmp_path))
    assert all(e["cached"] and not e["rebuilt"] for e in again["exports"].values())


def test_output_takes_a_position_in_a_tuple_or_a_list():
    report = comparator.compare_pair(_MapAndScores(), _keras_map_and_scores(), X, output="1",
                                     port_weights="pytorch-to-keras",
                                     recipes=("pytorch:train", "keras:train"))
    assert report.settings["inputs"]["outputs_shape"] == [4, models.CLASSES]
    assert report.checks[0].value < 1e-6


@pytest.mark.parametrize("output, message", [
    (None, r"the PyTorch model returns a dict of 2 outputs; .* choose one with --output "
           r"\(one of 'out', 'aux'\)"),
    ("mask", r"--output mask: the Keras model returns a dict of 2 outputs; give one of 'out', "
             r"'aux'"),
    ("out:", r"--output takes KEY or TORCH_KEY:KERAS_KEY, not 'out:'"),
])
def test_a_wrong_output_is_one_line(output, message):
    with pytest.raises(UsageError, match=message) as caught:
        comparator.compare_pair(models.seeded(models.SegmentationWithAux),
                                models.keras_segmentation_with_aux_twin(), X, output=output)
    assert "\n" not in str(caught.value)


def test_a_comparison_that_fails_takes_its_output_hook_off_too():
    torch_model = models.seeded(models.SegmentationWithAux)
    with pytest.raises(UsageError, match="labels must be 4 x 8 x 8 integers"):
        comparator.compare_pair(torch_model, models.keras_segmentation_with_aux_twin(), X,
                                np.arange(4), output="out")
    assert _returns_a_dict(torch_model)


def test_output_on_a_model_with_one_output_is_one_line():
    with pytest.raises(UsageError, match="--output out: the Keras model returns one output; "
                                         "--output chooses among several"):
        comparator.compare_pair(models.seeded(models.SegmentationNet),
                                models.keras_segmentation_twin(), X, output="out")


def test_the_validator_validates_the_chosen_output():
    torch_model = models.seeded(models.SegmentationWithAux)
    result = comparator.validate_port(torch_model, models.keras_segmentation_with_aux_twin(), X,
                                      output="out", port="pytorch-to-keras")
    assert result.first_divergence is None and result.pairs == 3
    assert "output 'out' validated; PyTorch's aux, whose weights do not reach it, left out" \
        in result.notes
    assert _returns_a_dict(torch_model)


def test_the_validator_traces_a_subclassed_model_and_validates_the_chosen_output():
    """Was refused: "cannot trace Keras model 'subclassed_aux_twin' (KerasSegmentationWithAux,
    subclassed)". Traced through its call(), the graph is cut to the chosen output as a
    functional model's is: the aux head is in neither side's pairs."""
    torch_model = models.seeded(models.SegmentationWithAux)
    result = comparator.validate_port(torch_model,
                                      models.keras_subclassed_segmentation_with_aux_twin(), X,
                                      output="out", port="pytorch-to-keras")
    assert result.first_divergence is None and result.pairs == 3
    assert [c.keras_layer for c in result.passes[0].layers] == ["conv", "bn", "classify"]
    assert result.notes[-2:] == (
        "Keras model 'subclassed_aux_twin' (KerasSegmentationWithAux, subclassed) validated as "
        "the graph its call() traces on a symbolic input, over the model's own weights, which "
        "gave the model's outputs in inference mode and training mode (max abs 0)",
        "output 'out' validated; PyTorch's aux, whose weights do not reach it, left out")
    assert _returns_a_dict(torch_model)


def test_a_failed_port_check_on_a_subclassed_model_is_located_on_the_chosen_output():
    """Was not located: "cannot trace Keras layer 'subclassed_aux_twin': it is a nested
    model", the subclassed model as the model --output wraps it in holds it."""
    report = comparator.compare_pair(models.seeded(models.SegmentationWithAux),
                                     models.keras_subclassed_segmentation_with_aux_twin(), X,
                                     output="out", recipes=("pytorch:train", "keras:train"))
    found = report.settings["pair"]["first_divergence"]
    assert not report.checks[0].passed
    assert (found["located"], found["torch_module"], found["keras_layer"], found["causes"]) == (
        True, "backbone.conv", "conv", ["weights"])


def test_a_failed_port_check_is_located_on_the_chosen_output():
    report = comparator.compare_pair(models.seeded(models.SegmentationWithAux),
                                     models.keras_segmentation_with_aux_twin(), X, output="out",
                                     recipes=("pytorch:train", "keras:train"))
    found = report.settings["pair"]["first_divergence"]
    assert not report.checks[0].passed
    assert (found["torch_module"], found["keras_layer"], found["causes"]) == (
        "backbone.conv", "conv", ["weights"])
