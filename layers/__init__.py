"""handprop layers: forward/backward pairs derived by hand, numpy only."""
from .base import Layer
from .batchnorm import BatchNorm1d
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .pool import AvgPool2d, MaxPool2d
from .relu import ReLU
from .sequential import Sequential
from .tanh import Tanh

__all__ = ["Layer", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Flatten", "Linear",
           "MaxPool2d", "ReLU", "Sequential", "Tanh"]
