"""How far TF32 moves DenseNet121's logits on this GPU: `python tools/tf32_probe.py`.

Prints, for torchvision's DenseNet121 in eval mode (seeded random weights, a seeded
batch of 8 at 224 px), the largest absolute difference of the logits from a float64
CPU reference with torch's default float32 settings on the GPU and with TF32 off
(adapters/devices.py), and the same on the CPU. The port checks allow 1e-4.
"""

from __future__ import annotations

import torch
import torchvision


def _logits(model, x, device):
    with torch.no_grad():
        return model.to(device)(x.to(device)).double().cpu()


def main() -> None:
    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None).eval()
    x = torch.randn(8, 3, 224, 224)
    reference = _logits(model.double(), x.double(), "cpu")
    model = model.float()
    rows = [("cpu float32", _logits(model, x, "cpu"))]
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; cuDNN conv "
              f"fp32_precision {torch.backends.cudnn.conv.fp32_precision!r}, matmul "
              f"{torch.backends.cuda.matmul.fp32_precision!r}")
        rows.append(("cuda, torch defaults", _logits(model, x, "cuda")))
        from adapters.devices import use_full_float32

        use_full_float32("torch")
        rows.append(("cuda, TF32 off", _logits(model, x, "cuda")))
    for name, logits in rows:
        print(f"{name:24s} max |logit - float64| = {(logits - reference).abs().max():.2e}")


if __name__ == "__main__":
    main()
