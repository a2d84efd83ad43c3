"""Property-based tests (hypothesis): activations, losses and the file loader on random shapes and values."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from framework.errors import ConfigError
from framework.registry import activations, datasets, losses

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
SETTINGS = settings(max_examples=40, deadline=None)


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            return fn()


@SETTINGS
@given(name=st.sampled_from(activations.names()), dtype=st.sampled_from([np.float32, np.float64]),
       z=arrays(np.float64, array_shapes(min_dims=2, max_dims=2, max_side=7), elements=FLOATS))
def test_activation_finite_shape_dtype_on_random_inputs(name, dtype, z):
    act, z = activations.create(name), z.astype(dtype)
    z0 = z.copy()
    a = _quiet(lambda: act.forward(np, z))
    d = _quiet(lambda: act.backward(np, z, a, np.ones_like(z)))
    assert a.shape == d.shape == z.shape and a.dtype == d.dtype == dtype
    assert np.isfinite(a).all() and np.isfinite(d).all()
    np.testing.assert_array_equal(z, z0)


@SETTINGS
@given(name=st.sampled_from(losses.names()), n=st.integers(1, 9), c=st.integers(2, 5), seed=st.integers(0, 2**31),
       scale=st.floats(1e-3, 1e3))
def test_loss_finite_nonnegative_and_weight_one_is_unweighted(name, n, c, seed, scale):
    from framework.gradcheck import sample_loss_inputs

    loss = losses.create(name)
    rng = np.random.default_rng(seed)
    pred, target = sample_loss_inputs(loss, (n, c), rng)
    if not loss.on_probabilities:
        pred = pred * scale
    value = _quiet(lambda: loss.forward(np, pred, target))
    grad = _quiet(lambda: loss.backward(np, pred, target))
    assert np.isfinite(value) and value >= 0 and np.isfinite(grad).all() and grad.shape == pred.shape
    ones = np.ones(n)
    assert float(loss.forward(np, pred, target, ones)) == pytest.approx(float(value), rel=1e-12)
    np.testing.assert_allclose(loss.backward(np, pred, target, ones), grad, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(data=arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(2, 5)),
                   elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)),
       bad=st.sampled_from([None, "nan", "inf", "-inf", "abc", ""]), where=st.integers(0, 10**6))
def test_csv_loader_round_trips_or_names_the_bad_cell(tmp_path_factory, data, bad, where):
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    cols = [f"c{i}" for i in range(data.shape[1])]
    rows = [[repr(float(v)) for v in row] for row in data]
    if bad is not None:
        r, c = divmod(where % data.size, data.shape[1])
        rows[r][c] = bad
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    if bad is None:
        ds = datasets.create("file", path=str(path))
        assert ds.X.shape == (data.shape[0], data.shape[1] - 1) and ds.y.shape == (data.shape[0], 1)
        np.testing.assert_array_equal(np.column_stack([ds.X, ds.y]), data)
    else:
        with pytest.raises(ConfigError) as e:
            datasets.create("file", path=str(path))
        assert f"'{cols[c]}'" in str(e.value) and f"line {r + 2}" in str(e.value)
