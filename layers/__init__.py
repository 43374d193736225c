"""handprop layers: forward/backward pairs derived by hand, numpy (and scipy.special) only."""
from .base import Layer
from .batchnorm import BatchNorm1d
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .flat_params import flatten_params
from .flatten import Flatten
from .gelu import GELU
from .layernorm import LayerNorm
from .leaky_relu import LeakyReLU
from .linear import Linear
from .models import cnn, mlp
from .pool import AvgPool2d, MaxPool2d
from .relu import ReLU
from .sequential import Residual, Sequential
from .sigmoid import Sigmoid
from .softmax import Softmax
from .tanh import Tanh

__all__ = ["Layer", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "GELU",
           "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d", "ReLU", "Residual", "Sequential",
           "Sigmoid", "Softmax", "Tanh", "cnn", "flatten_params", "mlp"]
