"""The model zoo: one module per model family, each declaring its specs (builders,
input, BatchNorm conventions, known differences), its port-map namer and its checkpoint
facts. Adapters read these facts; they never hard-code them.

Adding a model: a module here that calls `register(ModelSpec(...))`, imported below, a
builder for its family in adapters/pytorch/models.py and adapters/keras/models.py, and a
test (tests/test_zoo.py checks every registered family against both adapters).
"""

from comparator.zoo.spec import (  # noqa: F401  (the zoo's public names)
    FRAMEWORK_SIDES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    KerasCheckpoint,
    ModelSpec,
    Preprocessing,
    default_scenario,
    get_spec,
    known_models,
    register,
)
from comparator.zoo import densenet, mobilenet, resnet, small, vgg  # noqa: E402,F401  (register)
