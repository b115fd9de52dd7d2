"""PyTorch, the reference side: every comparison's weights are made and checked here."""

from adapters.pytorch.dynamo import defer_dynamo_import

defer_dynamo_import()  # before any module of this package imports torchvision
