"""The saved artifacts reproduce the reported numbers with plain torchvision code."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from comparator.report.artifacts import save_artifacts


def test_artifacts_reproduce_pytorch_losses(densenet_classify, tmp_path):
    written = save_artifacts(densenet_classify, str(tmp_path / "art"))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == [
        "batch.npz", "pytorch_state_dict.pt", "report.json"]
    batch = np.load(tmp_path / "art" / "batch.npz")
    model = torchvision.models.densenet121()
    model.load_state_dict(torch.load(tmp_path / "art" / "pytorch_state_dict.pt",
                                     weights_only=True))
    x, y = torch.from_numpy(batch["x"]), torch.from_numpy(batch["y"])
    report = densenet_classify.report
    model.eval()
    with torch.no_grad():
        eval_loss = F.cross_entropy(model(x), y).item()
    assert eval_loss == pytest.approx(report.run("pytorch:eval").losses.inference_before,
                                      abs=1e-5)
    model.train()
    train_loss = F.cross_entropy(model(x), y)
    assert train_loss.item() == pytest.approx(report.run("pytorch:train").losses.train_step[0],
                                              abs=1e-5)
    train_loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    model.eval()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y).item()
    assert after == pytest.approx(report.run("pytorch:train").losses.inference_after, abs=1e-4)


def test_head_artifacts_include_the_head(tiny_head, tmp_path):
    written = save_artifacts(tiny_head, str(tmp_path))
    assert any(p.endswith("pytorch_head_state_dict.pt") for p in written)
    head = torch.load(tmp_path / "pytorch_head_state_dict.pt", weights_only=True)
    assert head["0.weight"].shape == (64, 32)
