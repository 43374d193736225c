"""How the reference values in test_embedding.py, test_rnn.py, test_lstm.py and test_gru.py were
made: torch 2.13.0+cpu, float64, ``/work/venvs/torch/bin/python tests/torch_reference_recurrent.py``.
Not a test (torch is never a dependency); its output is pasted into the tests.

Every input is a ``wave``: ``scale * sin(freq * arange(n) + phase)`` reshaped, built with numpy
in float64 so that the tests rebuild exactly the same arrays. Weights are given in handprop's
layout (in, out) and handed to PyTorch transposed. The loss is ``sum(out * dout)``, so every
gradient is the backward pass of ``dout``.
"""
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def wave(shape, freq, phase, scale=0.5):
    return scale * np.sin(freq * np.arange(int(np.prod(shape))) + phase).reshape(shape)


def show(name, value):
    print(f"    {name}={np.asarray(value).tolist()!r},")


def embedding(padding_idx):
    W = wave((6, 3), 1.1, 0.3, 1.0)
    ids = np.array([[1, 4, 1, 0], [5, 1, 2, 4]])
    dout = wave((2, 4, 3), 0.7, 0.2, 1.0)
    emb = torch.nn.Embedding(6, 3, padding_idx=padding_idx)
    with torch.no_grad():
        emb.weight[...] = torch.from_numpy(W)
    out = emb(torch.from_numpy(ids))
    out.backward(torch.from_numpy(dout))
    print(f"EMBEDDING_{padding_idx} = dict(")
    show("out", out.detach())
    show("dW", emb.weight.grad)
    print(")")


def recurrent(name, module, gates, **options):
    N, T, D, H = 2, 3, 3, 4
    x = wave((N, T, D), 0.9, 0.1, 1.0)
    h0 = wave((N, H), 0.6, 0.4)
    c0 = wave((N, H), 0.45, 1.3)
    dout = wave((N, T, H), 0.37, 0.2, 1.0)
    W_ih, W_hh = wave((D, gates * H), 1.3, 0.5), wave((H, gates * H), 0.8, 0.7)
    b_ih, b_hh = wave((gates * H,), 1.7, 0.2, 0.3), wave((gates * H,), 0.55, 1.1, 0.3)
    layer = module(D, H, batch_first=True, **options)
    with torch.no_grad():
        for ours, theirs in [(W_ih.T, "weight_ih_l0"), (W_hh.T, "weight_hh_l0"),
                             (b_ih, "bias_ih_l0"), (b_hh, "bias_hh_l0")]:
            getattr(layer, theirs)[...] = torch.from_numpy(ours)
    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0[None]).requires_grad_()
    c0t = torch.from_numpy(c0[None]).requires_grad_()
    out, state = layer(xt, (h0t, c0t) if module is torch.nn.LSTM else h0t)
    out.backward(torch.from_numpy(dout))
    print(f"{name} = dict(")
    show("out", out.detach())
    if module is torch.nn.LSTM:
        show("h_n", state[0].detach()[0])
        show("c_n", state[1].detach()[0])
        show("dc0", c0t.grad[0])
    else:
        show("h_n", state.detach()[0])
    show("dx", xt.grad)
    show("dh0", h0t.grad[0])
    show("W_ih", layer.weight_ih_l0.grad.T)
    show("W_hh", layer.weight_hh_l0.grad.T)
    show("b_ih", layer.bias_ih_l0.grad)
    show("b_hh", layer.bias_hh_l0.grad)
    print(")")


if __name__ == "__main__":
    embedding(None)
    embedding(1)
    recurrent("RNN_TANH", torch.nn.RNN, 1)
    recurrent("RNN_RELU", torch.nn.RNN, 1, nonlinearity="relu")
    recurrent("LSTM_REF", torch.nn.LSTM, 4)
    recurrent("GRU_REF", torch.nn.GRU, 3)
