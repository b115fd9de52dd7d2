"""pytorch:requires_grad_except_bn, keras:bn_trainable's step in PyTorch: held against plain
PyTorch code that freezes every parameter but BatchNorm's weight and bias."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adapters.pytorch.adapter import PyTorchAdapter
from adapters.pytorch.models import build_network
from comparator.config.recipes import RECIPES, select
from comparator.inputs.batch import Batch
from comparator.zoo import get_spec

RECIPE = next(r for r in RECIPES if r.id == "pytorch:requires_grad_except_bn")
SEED, LR = 3, 0.5
BN_AFFINE = {f"bn{i}.{name}" for i in (1, 2, 3) for name in ("weight", "bias")}


def _adapter(scenario: str) -> PyTorchAdapter:
    adapter = PyTorchAdapter()
    adapter.build(get_spec("tiny_cnn"), scenario, SEED, 16)
    adapter.load_weights(adapter.canonical_weights())
    return adapter


def _batch() -> Batch:
    rng = np.random.default_rng(0)
    return Batch(rng.standard_normal((4, 3, 16, 16)).astype(np.float32),
                 rng.integers(0, 10, 4).astype(np.int64))


def _requiring_grad(adapter: PyTorchAdapter) -> set[str]:
    adapter.reset()
    adapter._apply_impl(RECIPE)
    return {name for name, p in adapter.model.named_parameters() if p.requires_grad}


def _plain_step(initial: dict, batch: Batch) -> dict:
    """The step in plain PyTorch: requires_grad=False but on BatchNorm's weight and bias,
    the model in train() (Dropout drawn from the seed, as the adapter draws it), one SGD step."""
    net = build_network(get_spec("tiny_cnn"))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in initial.items()}, strict=False)
    for p in net.parameters():
        p.requires_grad_(False)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(True)
            module.bias.requires_grad_(True)
    net.train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=LR)
    torch.manual_seed(SEED)
    loss = F.cross_entropy(net(torch.from_numpy(batch.x)), torch.from_numpy(batch.y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {k: v.detach().numpy() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def test_only_batchnorm_weight_and_bias_train_and_the_step_is_plain_pytorchs():
    adapter, batch = _adapter("classify"), _batch()
    assert _requiring_grad(adapter) == BN_AFFINE
    initial = {k: v.copy() for k, v in adapter.canonical_weights().items()}
    measured = adapter.run_recipe(RECIPE, batch, 1, LR)
    assert measured.result.state.trainable_params == 2 * (8 + 16 + 32)
    assert measured.result.modes.bn_batch_stats == 3  # the module stays in train()
    expected = _plain_step(initial, batch)
    assert set(expected) == set(measured.final_state)
    for name, array in expected.items():
        np.testing.assert_array_equal(measured.final_state[name], array, err_msg=name)
    changed = {k for k in initial if not np.array_equal(initial[k], expected[k])}
    assert {k for k in changed if not k.endswith(("running_mean", "running_var"))} == BN_AFFINE


def test_the_head_scenario_trains_the_head_and_the_backbones_batchnorm_weight_and_bias():
    trained = _requiring_grad(_adapter("head"))
    assert {n for n in trained if n.startswith("backbone.")} == {
        f"backbone.{name}" for name in BN_AFFINE}
    assert {n for n in trained if not n.startswith("backbone.")} == {
        "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"}


def test_it_is_selectable_and_not_in_the_default_matrix():
    assert RECIPE.id not in [r.id for r in select([], ["pytorch", "keras"])]
    assert [r.id for r in select([RECIPE.id], ["pytorch", "keras"])] == [RECIPE.id]


def test_a_users_pair_with_freeze_pairs_it_with_keras_bn_trainable():
    """The tests' small pair with --freeze features, SGD: both train the head and the stem's
    BatchNorm gamma and beta (712 weights) and leave the same weights; the running variances
    alone differ (Keras updates them with the biased batch variance)."""
    import comparator
    from tests import user_pair_models as pair

    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = comparator.compare_pair(pair.seeded_torch_net(), pair.ported_keras_net(), x,
                                     freeze="features", dropout="off",
                                     recipes=(RECIPE.id, "keras:bn_trainable"))
    torch_run, keras_run = report.run(RECIPE.id), report.run("keras:bn_trainable")
    assert torch_run.state.trainable_params == keras_run.state.trainable_params == 712
    (eq,) = [eq for eq in report.equivalences if (eq.a, eq.b) == ("keras:bn_trainable",
                                                                   RECIPE.id)]
    assert eq.expected and eq.max_weight_diff < 1e-6
    assert [d.split(" differ")[0] for d in eq.differences] == [
        "BatchNorm running statistics after the step"]
