"""MSELoss, L1Loss, HuberLoss, BCEWithLogitsLoss: PyTorch's values and gradients, gradcheck,
every reduction, dtypes, and the errors of a target that does not fit."""
import ast

import numpy as np
import pytest

from handprop.layers.gradcheck import gradcheck
from handprop.losses import BCEWithLogitsLoss, HuberLoss, L1Loss, MSELoss
from handprop.train.gradcheck import PerElement

LOSSES = {
    "MSELoss": MSELoss,
    "L1Loss": L1Loss,
    "HuberLoss": HuberLoss,
    "HuberLoss delta=0.5": lambda **kw: HuberLoss(delta=0.5, **kw),
    "BCEWithLogitsLoss": BCEWithLogitsLoss,
    "BCEWithLogitsLoss pos_weight": lambda **kw: BCEWithLogitsLoss(pos_weight=[3.0, 0.5], **kw),
}

# Made once with torch 2.13.0+cpu in float64, outside this project (torch is no dependency):
#   x = PRED.clone().requires_grad_(); out = nn.<Loss>(reduction=r, ...)(x, TARGET)
#   out.backward() for "mean"/"sum", out.backward(UPSTREAM) for "none"; then out, x.grad
# (BCEWithLogitsLoss on LOGITS and LABELS, pos_weight=torch.tensor([3.0, 0.5])).
PRED = np.array([[0.5, -1.2], [2.0, 0.3], [-0.7, 1.5]])
TARGET = np.array([[0.1, -1.0], [0.0, 0.3], [1.8, 0.2]])  # [1, 1] is exact: L1's gradient 0 there
UPSTREAM = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]])
LOGITS = np.array([[2.0, -1.0], [0.5, 0.0], [-3.0, 4.0]])
LABELS = np.array([[1.0, 0.0], [0.3, 1.0], [0.0, 1.0]])
TORCH_REFERENCE = [
    ('MSELoss', 'mean', 2.023333333333333,
     [[0.13333333333333333, -0.06666666666666665], [0.6666666666666666, 0.0], [-0.8333333333333333, 0.43333333333333335]]),
    ('MSELoss', 'sum', 12.139999999999999,
     [[0.8, -0.3999999999999999], [4.0, 0.0], [-5.0, 2.6]]),
    ('MSELoss', 'none', [[0.16000000000000003, 0.03999999999999998], [4.0, 0.0], [6.25, 1.6900000000000002]],
     [[0.8, 0.7999999999999998], [2.0, 0.0], [7.5, 0.65]]),
    ('L1Loss', 'mean', 1.0666666666666667,
     [[0.16666666666666666, -0.16666666666666666], [0.16666666666666666, 0.0], [-0.16666666666666666, 0.16666666666666666]]),
    ('L1Loss', 'sum', 6.4,
     [[1.0, -1.0], [1.0, 0.0], [-1.0, 1.0]]),
    ('L1Loss', 'none', [[0.4, 0.19999999999999996], [2.0, 0.0], [2.5, 1.3]],
     [[1.0, 2.0], [0.5, 0.0], [1.5, 0.25]]),
    ('HuberLoss', 'mean', 0.7333333333333334,
     [[0.06666666666666667, -0.033333333333333326], [0.16666666666666666, 0.0], [-0.16666666666666666, 0.16666666666666666]]),
    ('HuberLoss', 'sum', 4.4,
     [[0.4, -0.19999999999999996], [1.0, 0.0], [-1.0, 1.0]]),
    ('HuberLoss', 'none', [[0.08000000000000002, 0.01999999999999999], [1.5, 0.0], [2.0, 0.8]],
     [[0.4, 0.3999999999999999], [0.5, 0.0], [1.5, 0.25]]),
    ('HuberLoss delta=0.5', 'mean', 0.4375,
     [[0.06666666666666667, -0.033333333333333326], [0.08333333333333333, 0.0], [-0.08333333333333333, 0.08333333333333333]]),
    ('HuberLoss delta=0.5', 'sum', 2.625,
     [[0.4, -0.19999999999999996], [0.5, 0.0], [-0.5, 0.5]]),
    ('HuberLoss delta=0.5', 'none', [[0.08000000000000002, 0.01999999999999999], [0.875, 0.0], [1.125, 0.525]],
     [[0.4, 0.3999999999999999], [0.25, 0.0], [0.75, 0.125]]),
    ('BCEWithLogitsLoss', 'mean', 0.3373585237987999,
     [[-0.01986715367035295, 0.04482357022833252], [0.05374322186697577, -0.08333333333333333], [0.00790431219626113, -0.0029977016603485915]]),
    ('BCEWithLogitsLoss', 'sum', 2.024151142792799,
     [[-0.11920292202211769, 0.2689414213699951], [0.3224593312018546, -0.5], [0.04742587317756678, -0.01798620996209155]]),
    ('BCEWithLogitsLoss', 'none', [[0.1269280110429725, 0.3132616875182228], [0.8240769841801067, 0.6931471805599453], [0.048587351573742055, 0.018149927917809738]],
     [[-0.11920292202211769, -0.5378828427399902], [0.1612296656009273, -1.5], [-0.07113880976635018, -0.004496552490522887]]),
    ('BCEWithLogitsLoss pos_weight', 'mean', 0.3678008001913218,
     [[-0.05960146101105882, 0.04482357022833252], [0.01598915498716123, -0.041666666666666664], [0.00790431219626113, -0.0014988508301742958]]),
    ('BCEWithLogitsLoss pos_weight', 'sum', 2.2068048011479307,
     [[-0.35760876606635295, 0.2689414213699951], [0.09593492992296737, -0.25], [0.04742587317756678, -0.008993104981045774]]),
    ('BCEWithLogitsLoss pos_weight', 'none', [[0.3807840331289175, 0.3132616875182228], [1.1085231746881707, 0.34657359027997264], [0.048587351573742055, 0.009074963958904869]],
     [[-0.35760876606635295, -0.5378828427399902], [0.047967464961483686, -0.75], [-0.07113880976635018, -0.0022482762452614435]]),
]


def inputs(name):
    return (LOGITS, LABELS) if name.startswith("BCE") else (PRED, TARGET)


@pytest.mark.parametrize("name,reduction,value,grad", TORCH_REFERENCE)
def test_matches_pytorch(name, reduction, value, grad):
    loss = LOSSES[name](reduction=reduction)
    out = loss.forward(*inputs(name))
    if reduction == "none":
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        np.testing.assert_allclose(out, value, rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(loss.backward(UPSTREAM), grad, rtol=1e-14, atol=1e-16)
    else:
        assert isinstance(out, float) and out == pytest.approx(value, rel=1e-14)
        np.testing.assert_allclose(loss.backward(), grad, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(1, 1), (6, 3), (7,)])
def test_gradcheck(name, reduction, shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    pred = 3 * rng.standard_normal(shape)
    target = rng.uniform(size=shape) if name.startswith("BCE") else rng.standard_normal(shape)
    kw = {"pos_weight": 2.0} if name.endswith("pos_weight") else {}  # one weight broadcasts
    loss = LOSSES[name.replace(" pos_weight", "")](reduction=reduction, **kw)
    report = gradcheck(loss, pred, target)
    assert report.ok, report
    assert report.rows[0].skipped == 0


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_per_element(name):
    pred, target = inputs(name)
    report = gradcheck(PerElement(LOSSES[name](reduction="none"), target), pred + 0.01)
    assert report.ok, report


def test_l1_gradient_is_zero_where_pred_equals_target():
    loss = L1Loss()
    loss.forward(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0]))
    np.testing.assert_array_equal(loss.backward(), [0.0, 1 / 3, -1 / 3])


def test_huber_is_continuous_at_delta():
    d = 0.7 + np.array([-1e-9, 0.0, 1e-9])
    loss = HuberLoss(reduction="none", delta=0.7)
    np.testing.assert_allclose(loss.forward(d, np.zeros(3)), 0.7**2 / 2, rtol=1e-8)
    np.testing.assert_allclose(loss.backward(np.ones(3)), 0.7, rtol=1e-8)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_stays_float32(name, reduction):
    pred, target = (a.astype(np.float32) for a in inputs(name))
    loss = LOSSES[name](reduction=reduction)
    out = loss.forward(pred, target)
    if reduction == "none":
        assert out.dtype == np.float32
        grad = loss.backward(UPSTREAM.astype(np.float32))
    else:
        assert isinstance(out, float)
        grad = loss.backward(np.float64(0.5))  # a float64 scalar upstream does not upcast
    assert grad.dtype == np.float32


@pytest.mark.parametrize("name", LOSSES)
def test_backward_scales_with_dloss_and_reduction(name):
    mean, total = LOSSES[name](), LOSSES[name](reduction="sum")
    mean.forward(*inputs(name)), total.forward(*inputs(name))
    np.testing.assert_allclose(total.backward(2.0), 6 * mean.backward(2.0), rtol=1e-15)
    np.testing.assert_allclose(mean.backward(0.5), 0.5 * mean.backward(), rtol=1e-15)


def test_repr():
    assert repr(MSELoss()) == "MSELoss()"
    assert repr(L1Loss(reduction="none")) == "L1Loss(reduction='none')"
    assert repr(HuberLoss(delta=0.5, reduction="sum")) == "HuberLoss(reduction='sum', delta=0.5)"
    assert repr(BCEWithLogitsLoss(pos_weight=[3, 1])) == "BCEWithLogitsLoss(pos_weight=[3.0, 1.0])"
    assert repr(BCEWithLogitsLoss(pos_weight=np.ones(9))) == "BCEWithLogitsLoss(pos_weight=<9 values>)"


P = np.zeros((4, 1))


@pytest.mark.parametrize("pred,target,error,message", [
    (P, np.zeros(4), ValueError,
     r"^MSELoss\(\): expected a target of the prediction's shape \(N, 1\), here \(4, 1\), got "
     r"\(4,\); a target of another shape is never broadcast \(a \(N,\) target against \(N, 1\) "
     r"predictions would compare every prediction with every target, an N x N grid\); if they are "
     r"the same values, reshape the target: target.reshape\(-1, 1\)$"),
    (np.zeros(4), P, ValueError, r"prediction's shape \(N,\), here \(4,\), got \(4, 1\); .* "
                                 r"target.reshape\(-1\)$"),
    (np.zeros((4, 3, 2)), np.zeros((4, 6)), ValueError, r"shape \(N, 3, 2\), here \(4, 3, 2\), got "
                                                        r"\(4, 6\); .* target.reshape\(-1, 3, 2\)$"),
    (P, np.zeros((3, 1)), ValueError, r"shape \(N, 1\), here \(4, 1\), got \(3, 1\); a target of another shape is "
                                      r"never broadcast .* an N x N grid\)$"),
    (P, np.zeros((4, 1), np.int64), TypeError,
     r"^MSELoss\(\): expected a floating-point target, got dtype int64; convert it with "
     r"target.astype\(np.float64\)$"),
    (P, np.zeros((4, 1), np.float32), TypeError,
     r"expected a target of the prediction's dtype float64, got float32"),
    (P, [[0.0]] * 4, TypeError, r"expected the target as a numpy array, got list"),
    (P.astype(np.int64), P, TypeError, r"^MSELoss\(\): expected a floating-point input, got dtype int64"),
    ([[0.0]], np.zeros((1, 1)), TypeError, r"expected a numpy array, got list"),
    (np.zeros((0, 1)), np.zeros((0, 1)), ValueError, r"expected at least one sample, got an empty "
                                                    r"batch of shape \(0, 1\)$"),
    (np.array(1.0), np.array(1.0), ValueError, r"got shape \(\); use pred.reshape\(1\)"),
])
def test_bad_input(pred, target, error, message):
    with pytest.raises(error, match=message):
        MSELoss().forward(pred, target)


@pytest.mark.parametrize("loss", [L1Loss(), HuberLoss(delta=2.0), BCEWithLogitsLoss()])
def test_every_loss_refuses_a_broadcast_target(loss):
    with pytest.raises(ValueError, match=rf"^{type(loss).__name__}\(.*\): expected a target of the "
                                         r"prediction's shape \(N, 1\), here \(4, 1\), got \(4,\)"):
        loss.forward(P, np.zeros(4))


@pytest.mark.parametrize("reduction,dloss,error,message", [
    ("mean", np.ones((4, 1)), TypeError,
     r"^MSELoss\(\): expected a real scalar dloss \(the loss is a scalar with reduction='mean'\), "
     r"got an array of shape \(4, 1\)$"),
    ("sum", "1", TypeError, r"got str '1'"),
    ("none", 1.0, TypeError, r"^MSELoss\(reduction='none'\): with reduction='none' backward takes "
                             r"the upstream gradient of each element, an array of shape \(4, 1\), got float$"),
    ("none", np.ones(4), ValueError, r"expected an upstream gradient of shape \(4, 1\) \(the output's\), got \(4,\)"),
    ("none", np.ones((4, 1), np.float32), TypeError, r"expected an upstream gradient of dtype float64"),
])
def test_bad_upstream(reduction, dloss, error, message):
    loss = MSELoss(reduction=reduction)
    loss.forward(P, P)
    with pytest.raises(error, match=message):
        loss.backward(dloss)


@pytest.mark.parametrize("cls", [MSELoss, L1Loss, HuberLoss, BCEWithLogitsLoss])
def test_backward_before_forward(cls):
    with pytest.raises(RuntimeError, match=rf"^{cls.__name__}\(\): backward called before forward"):
        cls().backward()


@pytest.mark.parametrize("make,error,message", [
    (lambda: MSELoss(reduction="avg"), ValueError,
     r"^MSELoss: expected reduction as one of 'mean', 'sum', 'none', got 'avg'$"),
    (lambda: L1Loss(reduction=None), TypeError, r"^L1Loss: expected reduction as one of 'mean'"),
    (lambda: HuberLoss(delta=0.0), ValueError, r"^HuberLoss: expected delta > 0, got 0.0$"),
    (lambda: HuberLoss(delta=float("inf")), ValueError, r"^HuberLoss: expected a finite delta, got inf$"),
    (lambda: HuberLoss(delta="1"), TypeError, r"^HuberLoss: expected delta as a real number, got '1'$"),
    (lambda: HuberLoss(delta=True), TypeError, r"^HuberLoss: expected delta as a real number, got True$"),
    (lambda: BCEWithLogitsLoss(pos_weight=[[1.0]]), ValueError,
     r"^BCEWithLogitsLoss: expected pos_weight as a number or a vector \(C,\) of weights, one per "
     r"output, got shape \(1, 1\)$"),
    (lambda: BCEWithLogitsLoss(pos_weight="3"), TypeError, r"pos_weight as a number or a vector"),
    (lambda: BCEWithLogitsLoss(pos_weight=[1.0, -2.0]), ValueError,
     r"^BCEWithLogitsLoss: expected finite pos_weight >= 0, got \[1.0, -2.0\]$"),
    (lambda: MSELoss("sum"), TypeError, r"positional"),
])
def test_bad_settings(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_docstring_examples():
    import doctest

    import handprop.losses.bce_with_logits
    import handprop.losses.regression
    for module in (handprop.losses.regression, handprop.losses.bce_with_logits):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_the_shape_hint_fits_the_whole_target_the_user_holds_not_only_the_batch():
    # fit hands the loss batches of 64 rows of a y (1000,): a hint naming 64 would not fit y
    y = np.linspace(0, 1, 1000)
    with pytest.raises(ValueError) as caught:
        MSELoss().forward(np.zeros((64, 1)), y[:64])
    message = str(caught.value)
    assert "64, 1)" not in message.split("here")[0] and "reshape(64" not in message
    hint = message.rsplit("target.reshape", 1)[1]
    assert y.reshape(ast.literal_eval(hint)).shape == (1000, 1)
