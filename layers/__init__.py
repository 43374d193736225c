"""handprop layers: forward/backward pairs derived by hand, numpy (and scipy.special) only."""
from .base import Layer
from .batchnorm import BatchNorm1d
from .dropout import Dropout
from .flat import flatten
from .gelu import GELU
from .layernorm import LayerNorm
from .leaky_relu import LeakyReLU
from .linear import Linear
from .models import mlp
from .relu import ReLU
from .sequential import Residual, Sequential
from .sigmoid import Sigmoid
from .softmax import Softmax
from .tanh import Tanh

__all__ = ["Layer", "BatchNorm1d", "Dropout", "GELU", "LayerNorm", "LeakyReLU", "Linear", "ReLU",
           "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "flatten", "mlp"]
