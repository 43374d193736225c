"""handprop layers: forward/backward pairs derived by hand, numpy (and scipy.special) only.

The contract (``base.Layer``): ``out = layer.forward(x)`` keeps in ``layer.cache`` what the
backward pass needs; ``dx = layer.backward(dout)`` returns dL/dx and writes dL/dparams INTO
``layer.grads`` (same names, shapes and dtype as ``layer.params``); ``buffers`` hold saved,
untrained state. Batch first; the parameters' dtype throughout; randomness only from a
generator the layer owns. A layer made of layers names its members in ``named_children``,
and ``named_modules``/``modules``, ``train``/``eval``, ``flatten_params`` and ``fit_lbfgs``
walk that one tree.

The layers, by family (one file each, named for what it holds):

    dense           linear.py (Linear, on (..., in))
    activations     relu.py, leaky_relu.py, tanh.py, sigmoid.py, gelu.py, softmax.py
    normalization   batchnorm.py (BatchNorm1d), batchnorm2d.py, layernorm.py
    regularization  dropout.py
    convolution     conv.py (Conv2d), pool.py (MaxPool2d, AvgPool2d), flatten.py (Flatten)
    sequence        embedding.py (Embedding: takes integer ids), rnn.py, lstm.py, gru.py
    containers      sequential.py (Sequential, Residual), data_parallel.py (DataParallel:
                    the batch split over threads)

Not layers:

    base.py         the Layer class and the input/gradient checks layers share
    validate.py     argument checks and their messages (real, integer, flag, choice, ...), and
                    MAX_PARAMETER_BYTES, the memory bound every constructor and builder keeps
    special.py      scipy's sigmoid and normal CDF in the input's dtype (float16 included)
    flat_params.py  flatten_params: every parameter as a view into one flat buffer
    models.py       mlp, cnn and char_lm, the networks the CLI, tests and benchmarks build
    windows.py      the sliding-window arithmetic of convolution and pooling
    recurrent.py    the time loop RNN, LSTM and GRU share (forward and backward through time)
    gates.py        the gate-by-gate engine (handprop.layers.gates): a derivation run as code
    gate_compare.py its comparison of a staged backward with a fused one
    gradcheck/      the gradient checker (``handprop.layers.gradcheck``)

Losses live in ``handprop.losses``; training (optimizers, ``fit``) in ``handprop.train``.
"""
from . import gates as gates  # the gate-by-gate engine, handprop.layers.gates (not a layer)
from .attention import CausalSelfAttention
from .base import Layer
from .batchnorm import BatchNorm1d
from .batchnorm2d import BatchNorm2d
from .conv import Conv2d
from .data_parallel import DataParallel
from .dropout import Dropout
from .embedding import Embedding
from .flat_params import flatten_params
from .flatten import Flatten
from .gelu import GELU
from .gpt import gpt
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

__all__ = ["Layer", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "CausalSelfAttention", "Conv2d", "DataParallel",
           "Dropout", "Embedding", "Flatten", "GELU", "GRU", "LSTM", "LayerNorm", "LeakyReLU", "Linear",
           "MaxPool2d", "RNN", "ReLU", "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "char_lm",
           "cnn", "flatten_params", "gpt", "mlp", "reorder_gates"]
