"""A step whose loss explodes to a finite number is flagged on its run (`finite_divergence`),
with numbers that plain PyTorch code here measures again; ordinary steps are not.

The rule (comparator/analysis/divergence.py): the weights the steps changed moved by more
than their own size, as the largest change against the largest weight or as L2 norms, and
the inference loss rose."""

import json
import math
from html import escape

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from comparator.config import CompareConfig
from comparator.pipeline import compare
from comparator.report.html import render_html
from comparator.report.markdown import render_markdown
from comparator.schema import report_from_dict
from tests.conftest import run_once


def _compared(model: str, lr: float, optimizer: str, recipes: tuple):
    sizes = {"image_size": 16} if model == "tiny_cnn" else {"scenario": "regress"}
    return compare(CompareConfig(model=model, batch_size=4, lr=lr, optimizer=optimizer,
                                 recipes=recipes, **sizes))


def _plain_step(outcome, optimizer: str, lr: float, eval_mode: bool) -> dict:
    """The step of pytorch:eval (eval_mode) or pytorch:train on a model without Dropout, in
    plain PyTorch from the initial weights: the sizes the rule compares and the losses."""
    model = outcome.adapters["pytorch"].model
    outcome.adapters["pytorch"].reset()
    model.eval() if eval_mode else model.train()
    x, y = torch.from_numpy(outcome.batch.x), torch.from_numpy(outcome.batch.y)
    loss = F.cross_entropy if outcome.report.scenario == "classify" else F.mse_loss
    before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        loss_before = float(loss(model(x), y))
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr)
    opt.zero_grad()
    loss(model(x), y).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        loss_after = float(loss(model(x), y))
    deltas = {n: p.detach().double() - before[n] for n, p in model.named_parameters()}
    changed = [n for n in deltas if bool(deltas[n].abs().max() > 0)]
    largest = max(float(before[n].abs().max()) for n in changed)
    return {"largest": largest, "before": loss_before, "after": loss_after,
            "max_delta_ratio": max(float(deltas[n].abs().max()) for n in changed) / largest,
            "norm_ratio": math.sqrt(sum(float((deltas[n] ** 2).sum()) for n in changed))
            / math.sqrt(sum(float((before[n] ** 2).sum()) for n in changed))}


def _agrees(record: dict, run, plain: dict) -> None:
    assert record["largest_weight_before"] == pytest.approx(plain["largest"], rel=1e-6)
    assert record["max_delta_ratio"] == pytest.approx(plain["max_delta_ratio"], rel=1e-3)
    assert record["norm_ratio"] == pytest.approx(plain["norm_ratio"], rel=1e-3)
    assert run.losses.inference_before == pytest.approx(plain["before"], rel=1e-5)
    assert run.losses.inference_after == pytest.approx(plain["after"], rel=1e-3)
    assert f"the largest of the weights changed was {plain['largest']:.3g}" in record["text"]
    assert f"rose from {plain['before']:.4g} to " in record["text"]


def test_a_sgd_step_exploding_to_1e18_is_flagged_with_the_measured_sizes():
    """tiny_cnn at --lr 1000: the inference loss rose from 2.38 to 6.9e18 (pytorch:eval)."""
    outcome = _compared("tiny_cnn", 1000.0, "sgd",
                        ("pytorch:eval", "pytorch:eval_requires_grad", "keras:train"))
    report = outcome.report
    run = report.run("pytorch:eval")
    record = run.finite_divergence
    plain = _plain_step(outcome, "sgd", 1000.0, eval_mode=True)
    assert plain["after"] > 1e15 and math.isfinite(plain["after"])
    assert plain["max_delta_ratio"] > 100 and plain["norm_ratio"] > 100
    _agrees(record, run, plain)
    assert record["text"].startswith("the step diverged without a NaN: it moved weights by "
                                     f"up to {run.state.max_weight_delta:.3g} where")
    assert report.run("keras:train").finite_divergence["max_delta_ratio"] > 100
    assert report.run("pytorch:eval_requires_grad").finite_divergence is None
    # A warning on the run, not a failure: no check fails and no run is left out.
    assert report.checks_passed and not report.unavailable_runs
    assert report_from_dict(report.to_dict()).run("pytorch:eval").finite_divergence == record
    assert f"- warning, `pytorch:eval`: {record['text']}" in render_markdown(report)
    assert f"<li><code>pytorch:eval</code>: {escape(record['text'])}</li>" in render_html(report)


def test_adam_moves_every_weight_by_lr_and_the_l2_norms_see_it():
    """tiny_cnn, Adam at --lr 1: every weight moved by 1, less than the largest weight
    (1.24), while the change's L2 norm is 9 times the weights'; the loss rose to 1.7e6."""
    outcome = _compared("tiny_cnn", 1.0, "adam", ("pytorch:eval",))
    run = outcome.report.run("pytorch:eval")
    plain = _plain_step(outcome, "adam", 1.0, eval_mode=True)
    assert plain["max_delta_ratio"] < 1 < plain["norm_ratio"]
    _agrees(run.finite_divergence, run, plain)


def test_sgd_on_dense_mlp_moves_few_weights_and_the_largest_change_sees_it():
    """dense_mlp, SGD at --lr 1: a weight moved by 8.7 times the largest (0.1), while the
    change's L2 norm is 0.34 of the weights'; the loss rose from 0.24 to 2.6e3."""
    outcome = _compared("dense_mlp", 1.0, "sgd", ("pytorch:train", "keras:train"))
    run = outcome.report.run("pytorch:train")
    plain = _plain_step(outcome, "sgd", 1.0, eval_mode=False)
    assert plain["norm_ratio"] < 1 < plain["max_delta_ratio"]
    _agrees(run.finite_divergence, run, plain)
    keras = outcome.report.run("keras:train").finite_divergence
    assert keras["max_delta_ratio"] == pytest.approx(run.finite_divergence["max_delta_ratio"],
                                                      rel=1e-4)


def test_weights_that_outgrow_themselves_while_the_loss_falls_are_not_flagged():
    """keras:bn_trainable at --lr 30 moves a BatchNorm weight by 1.8, more than the largest
    weight (1.24), and the inference loss falls from 2.38 to 1.29: a large step, not a
    diverged one."""
    outcome = _compared("tiny_cnn", 30.0, "sgd", ("keras:bn_trainable",))
    run = outcome.report.run("keras:bn_trainable")
    model = outcome.adapters["pytorch"].model
    outcome.adapters["pytorch"].reset()
    largest = max(float(p.detach().abs().max()) for p in model.parameters())
    assert run.state.max_weight_delta > largest
    assert run.losses.inference_after < run.losses.inference_before
    assert run.finite_divergence is None


@pytest.mark.parametrize("model, sizes", [
    ("tiny_cnn", {"image_size": 16}), ("dense_mlp", {"scenario": "regress"})])
def test_the_default_step_is_not_flagged(model, sizes):
    report = run_once(model=model, batch_size=4, **sizes).report
    assert report.runs and all(run.finite_divergence is None for run in report.runs)
    assert all(run["finite_divergence"] is None for run in report.to_dict()["runs"])


def test_the_command_line_names_it_on_stderr_and_exits_0(tmp_path, capsys):
    from comparator.cli.compare import main

    report_path = tmp_path / "r.json"
    code = main(["dense_mlp", "--batch-size", "4", "--lr", "1000", "--no-onnx",
                 "--recipes", "pytorch:train", "--json", str(report_path)])
    out, err = capsys.readouterr()
    assert code == 0
    (line,) = [line for line in err.splitlines() if "diverged" in line]
    assert line.startswith("compare.py: warning: run pytorch:train: the step diverged "
                           "without a NaN: it moved weights by up to 872 where the largest of "
                           "the weights changed was 0.1 before")
    assert "warning, pytorch:train: the step diverged without a NaN" in " ".join(out.split())
    written = report_from_dict(json.loads(report_path.read_text())).run("pytorch:train")
    assert np.isfinite(written.finite_divergence["norm_ratio"])
