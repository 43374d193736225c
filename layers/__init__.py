"""handprop layers: forward/backward pairs derived by hand, numpy (and scipy.special) only."""
from . import gates as gates  # the gate-by-gate engine, handprop.layers.gates (not a layer)
from .base import Layer
from .batchnorm import BatchNorm1d
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .flat import flatten_params
from .flatten import Flatten
from .gelu import GELU
from .gru import GRU
from .layernorm import LayerNorm
from .leaky_relu import LeakyReLU
from .linear import Linear
from .lstm import LSTM, reorder_gates
from .models import char_lm, cnn, mlp
from .pool import AvgPool2d, MaxPool2d
from .relu import ReLU
from .rnn import RNN
from .sequential import Residual, Sequential
from .sigmoid import Sigmoid
from .softmax import Softmax
from .tanh import Tanh

__all__ = ["Layer", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Embedding", "Flatten", "GELU",
           "GRU", "LSTM", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d", "RNN", "ReLU", "Residual",
           "Sequential", "Sigmoid", "Softmax", "Tanh", "char_lm", "cnn", "flatten_params", "mlp", "reorder_gates"]
