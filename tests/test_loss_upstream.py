"""Every loss's backward takes a scalar upstream gradient, or with reduction="none" an array
of exactly the per-element losses' shape, and nothing else (issue 24: SoftmaxCrossEntropy's
backward broadcast a (3,) dloss over the classes)."""
import numpy as np
import pytest

from handprop.losses import BCEWithLogitsLoss, HuberLoss, L1Loss, MSELoss, SoftmaxCrossEntropy

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((3, 4)).astype(np.float32)
CLASSES = np.array([0, 1, 2])
VALUES = RNG.uniform(0, 1, (3, 4)).astype(np.float32)


def run_forward(loss_fn):
    target = CLASSES if isinstance(loss_fn, SoftmaxCrossEntropy) else VALUES
    return loss_fn.forward(LOGITS, target)


REDUCED = [SoftmaxCrossEntropy(), SoftmaxCrossEntropy(reduction="sum"), MSELoss(), L1Loss(),
           HuberLoss(reduction="sum"), BCEWithLogitsLoss()]
PER_ELEMENT = [MSELoss(reduction="none"), L1Loss(reduction="none"), HuberLoss(reduction="none"),
               BCEWithLogitsLoss(reduction="none")]
NOT_SCALARS = [np.array([1.0, 5.0, 9.0]), np.ones((3, 4)), np.array([2.0]), [1.0], "1", True,
               np.bool_(True), None, 1j]


@pytest.mark.parametrize("loss_fn", REDUCED, ids=repr)
@pytest.mark.parametrize("dloss", NOT_SCALARS, ids=repr)
def test_a_reduced_loss_refuses_any_upstream_gradient_but_a_real_scalar(loss_fn, dloss):
    run_forward(loss_fn)
    with pytest.raises(TypeError, match=r"expected a real scalar dloss"):
        loss_fn.backward(dloss)


@pytest.mark.parametrize("loss_fn", REDUCED, ids=repr)
def test_a_scalar_upstream_gradient_scales_the_gradient_and_keeps_its_dtype(loss_fn):
    run_forward(loss_fn)
    once = loss_fn.backward(1.0)
    for dloss in (3, np.float64(3.0), np.array(3.0), np.float16(3.0)):
        thrice = loss_fn.backward(dloss)
        assert thrice.dtype == np.float32 and thrice.shape == LOGITS.shape
        np.testing.assert_allclose(thrice, 3 * once, rtol=1e-6)


@pytest.mark.parametrize("loss_fn", PER_ELEMENT, ids=repr)
@pytest.mark.parametrize("dloss", [np.ones(3, np.float32), np.ones((3, 1), np.float32),
                                   np.ones((1, 4), np.float32), np.ones((3, 4, 1), np.float32)],
                         ids=lambda a: str(a.shape))
def test_a_per_element_loss_refuses_an_upstream_gradient_of_another_shape(loss_fn, dloss):
    run_forward(loss_fn)
    with pytest.raises(ValueError, match=r"expected an upstream gradient of shape \(3, 4\)"):
        loss_fn.backward(dloss)


@pytest.mark.parametrize("loss_fn", PER_ELEMENT, ids=repr)
@pytest.mark.parametrize("dloss", [1.0, [[1.0] * 4] * 3, np.ones((3, 4), np.float64)], ids=repr)
def test_a_per_element_loss_refuses_a_scalar_a_list_or_another_dtype(loss_fn, dloss):
    run_forward(loss_fn)
    with pytest.raises(TypeError, match=r"upstream gradient"):
        loss_fn.backward(dloss)
