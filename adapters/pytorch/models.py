"""PyTorch model construction for the model table: torchvision builders and this
project's own small models. Imported only by adapters.pytorch.adapter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from comparator.zoo import ModelSpec
from comparator.zoo.head import HEAD_DROPOUT, HEAD_HIDDEN



class TinyCNN(nn.Module):
    """Three conv-BN-ReLU blocks, global pooling, Dropout and a classifier."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(32, num_classes)

    def features(self, x):
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.classifier(self.dropout(self.features(x)))


def _densenet_features(module, x):
    return torch.flatten(F.adaptive_avg_pool2d(F.relu(module.features(x)), 1), 1)


def _tiny_features(module, x):
    return TinyCNN.features(module, x)


def _resnet_features(module, x):
    x = module.maxpool(module.relu(module.bn1(module.conv1(x))))
    x = module.layer4(module.layer3(module.layer2(module.layer1(x))))
    return torch.flatten(module.avgpool(x), 1)


def _pooled_features(module, x):
    """VGG and MobileNetV2: the `features` Sequential, then global average pooling (what
    Keras's include_top=False, pooling="avg" computes)."""
    return torch.flatten(F.adaptive_avg_pool2d(module.features(x), 1), 1)


class FeatureExtractor(nn.Module):
    """A network without its classifier; keeps the network's own submodule names."""

    def __init__(self, net: nn.Module, forward_features,
                 dropped=("classifier", "dropout", "fc")):
        super().__init__()
        for name, child in net.named_children():
            if name not in dropped:
                self.add_module(name, child)
        self._forward_features = forward_features

    def forward(self, x):
        return self._forward_features(self, x)


class HeadModel(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(feature_dim, HEAD_HIDDEN), nn.ReLU(),
                                  nn.Dropout(HEAD_DROPOUT), nn.Linear(HEAD_HIDDEN, 1))

    def forward(self, x):
        return self.head(self.backbone(x))


FEATURES = {"densenet": _densenet_features, "tiny": _tiny_features,
            "resnet": _resnet_features, "vgg": _pooled_features,
            "mobilenet_v2": _pooled_features}


class DenseMLP(nn.Module):
    """Dense(hidden, relu) on a vector, then Dense(1): the seed report's model."""

    def __init__(self, inputs: int = 100, hidden: int = 1000):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def build_network(spec: ModelSpec) -> nn.Module:
    """The full network of a spec, with PyTorch's own initialisation."""
    if spec.family == "mlp":
        return DenseMLP(spec.input_features, spec.feature_dim)
    if spec.family == "tiny":
        return TinyCNN(num_classes=spec.num_classes)
    return getattr(torchvision.models, spec.torchvision_builder)(weights=None)
