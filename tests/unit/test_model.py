import numpy as np
import pytest

from framework import ElementwiseActivation
from framework.errors import ConfigError, ShapeError
from framework.flat import FlatDict
from framework.gradcheck import check_model
from framework.model import MLP
from framework.registry import activations, losses

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 4))


@pytest.mark.parametrize("act,out_act,loss,target", [
    ("sigmoid", "sigmoid", "mse", RNG.uniform(size=(5, 3))),
    ("tanh", "identity", "cross_entropy", RNG.integers(0, 3, 5)),
    (["gelu", "elu"], "softmax", "bce", RNG.integers(0, 2, (5, 3)).astype(float)),
    (["silu", "softplus"], "identity", "huber", RNG.normal(size=(5, 3))),
    ("leaky_relu", "identity", "bce_with_logits", RNG.integers(0, 2, (5, 3)).astype(float)),
])
def test_model_gradcheck(act, out_act, loss, target):
    sizes = [4, 6, 5, 3]
    m = MLP(sizes, act, out_act, dtype="float64", initializer="xavier_normal", seed=1)
    weight = np.random.default_rng(1).uniform(0.5, 2.0, 5)  # not the module's RNG: the same whatever ran before
    check_model(m, X, losses.create(loss), target).raise_if_failed()
    check_model(m, X, losses.create(loss), target, weight).raise_if_failed()


@pytest.mark.parametrize("name", activations.names())
def test_model_gradcheck_every_activation(name):
    m = MLP([4, 5, 2], name, "identity", dtype="float64", seed=2)
    check_model(m, X, losses.create("mse"), np.random.default_rng(2).normal(size=(5, 2))).raise_if_failed()


class HalfSquare(ElementwiseActivation):
    """f(z) = z^2 / 2 written as a user might: its own `backward` (dL/dz = dL/da * z), no `derivative`."""

    def forward(self, xp, z):
        return z * z / 2

    def backward(self, xp, z, a, grad_a):
        return grad_a * z


class TanhOwnBackward(activations.get("tanh")):
    """Its own (right) `backward` beside an inherited `derivative` that disagrees with it: backward wins."""

    def derivative(self, xp, z, a):
        return 1 - a

    def backward(self, xp, z, a, grad_a):
        return grad_a * (1 - a * a)


@pytest.mark.parametrize("act", [HalfSquare, TanhOwnBackward])
def test_hidden_layer_uses_a_subclass_own_backward(act):
    """The model's in-place backward of hidden layers is the subclass's `backward` when it overrides one."""
    m = MLP([4, 5, 5, 2], act(), "identity", dtype="float64", seed=3)
    check_model(m, X, losses.create("mse"), np.random.default_rng(2).normal(size=(5, 2))).raise_if_failed()


def test_shapes_and_param_names():
    m = MLP([4, 8, 3])
    assert list(m.params) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    assert m.params["layers.0.W"].shape == (8, 4) and m.params["layers.1.b"].shape == (3,)
    assert m.forward(X).shape == (5, 3)
    dX = m.backward(np.ones((5, 3), dtype=np.float32))
    assert dX.shape == X.shape
    assert all(m.grads[k].shape == v.shape for k, v in m.params.items())
    assert m.num_params == 8 * 4 + 8 + 3 * 8 + 3


def test_float32_end_to_end_and_input_not_mutated():
    m = MLP([4, 8, 3], "tanh")
    Xc = X.copy()
    out = m.forward(X)
    m.backward(np.ones_like(out))
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in m.grads.values())
    np.testing.assert_array_equal(X, Xc)


def test_seeded_init_is_bit_identical_and_seed_sensitive():
    a, b, c = MLP([4, 8, 3], seed=5), MLP([4, 8, 3], seed=5), MLP([4, 8, 3], seed=6)
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes()
    assert a.params["layers.0.W"].tobytes() != c.params["layers.0.W"].tobytes()


def test_output_not_overwritten_by_later_forward():
    m = MLP([4, 8, 3])
    first = m.forward(X)
    saved = first.copy()
    m.forward(X * 2)
    np.testing.assert_array_equal(first, saved)


def test_bad_input_shape_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(batch, 4\), got \(5, 3\)"):
        MLP([4, 3]).forward(np.zeros((5, 3)))


def test_wrong_number_of_activations():
    with pytest.raises(ConfigError, match="2 activations given for 1 hidden layers"):
        MLP([4, 5, 3], ["relu", "tanh"])


def test_parameters_and_gradients_are_views_of_one_flat_buffer():
    """On a backend that writes into `out` (NumPy), params and grads are FlatDicts: their entries are
    consecutive views of `.flat`, backward writes into them, and assigning an entry copies into its
    view (what gradcheck and load_state_dict do), so the flat buffer never goes stale."""
    m = MLP([3, 4, 2], "tanh", backend="numpy", dtype="float64", seed=0)
    for d in (m.params, m.grads):
        assert isinstance(d, FlatDict) and d.flat.shape == (m.num_params,)
        assert all(np.shares_memory(v, d.flat) for v in d.values())
    m.backward(m.forward(np.ones((5, 3))))
    assert np.array_equal(np.concatenate([g.ravel() for g in m.grads.values()]), m.grads.flat)
    assert np.any(m.grads.flat != 0)
    W = m.params["layers.0.W"]
    m.params["layers.0.W"] = np.full((4, 3), 2.0)
    assert m.params["layers.0.W"] is W and np.array_equal(m.params.flat[:12], np.full(12, 2.0))
    with pytest.raises(KeyError):
        m.params["layers.9.W"] = np.zeros(3)
    with pytest.raises(ValueError):  # a wrong shape cannot be written into the view
        m.params["layers.0.b"] = np.zeros(5)
    pytest.importorskip("array_api_strict", reason="array-api-strict not installed")
    assert type(MLP([3, 4, 2], backend="array_api", dtype="float64").params) is dict  # no `out`: no views kept


def test_a_copied_model_and_optimizer_are_views_of_their_own_buffers():
    """copy.deepcopy and pickle of a model and its optimizer (a best-model copy, a sweep worker) give
    FlatDicts whose entries are views of the copy's own flat buffer, so the copy trains on its own."""
    import copy
    import pickle

    from framework.registry import optimizers

    m = MLP([3, 4, 2], "tanh", backend="numpy", dtype="float64", seed=0)
    m.grads.flat[...] = 0.1
    opt = optimizers.create("adam")
    opt.step(m.params, m.grads)
    for m2, opt2 in (copy.deepcopy((m, opt)), pickle.loads(pickle.dumps((m, opt)))):
        w, state = m.params.flat.copy(), {k: v.copy() for k, v in opt.state_dict().items() if k != "t"}
        opt2.step(m2.params, m2.grads)
        for d in (m2.params, m2.grads, opt2.state["m"], opt2.state["v"]):
            assert isinstance(d, FlatDict) and all(np.shares_memory(v, d.flat) for v in d.values())
        assert np.array_equal(m.params.flat, w)
        assert all(np.array_equal(opt.state_dict()[k], v) for k, v in state.items())
        assert not np.array_equal(m2.params.flat, w)
        assert np.array_equal(np.concatenate([v.ravel() for v in opt2.state["m"].values()]), opt2.state["m"].flat)
