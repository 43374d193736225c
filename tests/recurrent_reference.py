"""The shapes, inputs, weights and checks the recurrent layers' tests share: the numbers
tests/torch_reference_recurrent.py fed PyTorch. Not a test file: test_rnn.py, test_lstm.py and
test_gru.py load it by path (runpy), so no folder joins sys.path."""
import numpy as np

F64 = np.float64


def wave(shape, freq, phase, scale=0.5):
    """The inputs of tests/torch_reference_recurrent.py, rebuilt exactly."""
    return scale * np.sin(freq * np.arange(int(np.prod(shape))) + phase).reshape(shape)


N, T, D, H = 2, 3, 3, 4
X = wave((N, T, D), 0.9, 0.1, 1.0)
H0, C0 = wave((N, H), 0.6, 0.4), wave((N, H), 0.45, 1.3)
DOUT = wave((N, T, H), 0.37, 0.2, 1.0)


def loaded(cls, gates, dtype=F64, **options):
    """A layer holding the reference script's weights."""
    layer = cls(D, H, dtype=dtype, **options)
    for key, shape, freq, phase, scale in [("W_ih", (D, gates * H), 1.3, 0.5, 0.5),
                                           ("W_hh", (H, gates * H), 0.8, 0.7, 0.5),
                                           ("b_ih", (gates * H,), 1.7, 0.2, 0.3),
                                           ("b_hh", (gates * H,), 0.55, 1.1, 0.3)]:
        layer.params[key][...] = wave(shape, freq, phase, scale)
    return layer


def numeric_gradient(loss, a, step=1e-6):
    """Central differences of loss() with respect to every element of a (changed in place)."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        saved = a[i]
        a[i] = saved + step
        up = loss()
        a[i] = saved - step
        down = loss()
        a[i] = saved
        grad[i] = (up - down) / (2 * step)
    return grad


def assert_close(got, want, tol):
    """Largest absolute difference at most tol times the reference's largest magnitude (or 1)."""
    want = np.asarray(want)
    assert np.abs(got - want).max() <= tol * max(np.abs(want).max(), 1.0)
