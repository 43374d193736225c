"""handprop layers: forward/backward pairs derived by hand, numpy only."""
from .base import Layer
from .linear import Linear
from .relu import ReLU
from .tanh import Tanh

__all__ = ["Layer", "Linear", "ReLU", "Tanh"]
