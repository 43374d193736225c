"""handprop layers: forward/backward pairs derived by hand, numpy only."""
from .base import Layer
from .batchnorm import BatchNorm1d
from .flat import flatten
from .linear import Linear
from .relu import ReLU
from .sequential import Sequential
from .tanh import Tanh

__all__ = ["Layer", "flatten", "BatchNorm1d", "Linear", "ReLU", "Sequential", "Tanh"]
