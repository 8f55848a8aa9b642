"""Optimizer groups: `optax_labels` and `ssm_optimizer` (hippox/_src/optim.py).

The updates of `ssm_optimizer` are checked against Adam / AdamW written out in NumPy
(bias-corrected moments, decoupled weight decay, the warm-up + cosine schedule in
closed form), leaf by leaf, on the real parameter trees of NNX and linen models.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

optax = pytest.importorskip("optax")
nnx = pytest.importorskip("flax.nnx")

import hippox  # noqa: E402
from hippox._src.optim import ssm_optimizer  # noqa: E402
from hippox.nnx import SequenceModel  # noqa: E402

EPS = 1e-8


def _leaf_names(tree):
    """``{path: last name on the path}`` (NNX adds a trailing 'value' entry)."""
    out = {}
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        keys = [k for k in keys if isinstance(k, str) and k not in ("value", "raw_value")]
        out[path] = keys[-1]
    return out


def _s4_params(layer="s4", seed=0):
    kw = {"N": 4} if layer != "s5" else {"N": 4, "blocks": 1}
    model = SequenceModel(
        1, 3, d_model=4, n_layers=1, layer=layer, layer_kwargs=kw, l_max=8, rngs=nnx.Rngs(seed)
    )
    return jax.tree.map(
        lambda a: np.asarray(a, np.float64), nnx.to_pure_dict(nnx.state(model, nnx.Param))
    )


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "layer,ssm",
    [
        ("s4", {"Lambda_re", "Lambda_im", "P", "B", "log_dt"}),
        ("s4d", {"Lambda_re", "Lambda_im", "B", "log_dt"}),
        ("s5", {"Lambda_re", "Lambda_im", "B", "log_dt"}),
        ("lssl", {"A", "B", "log_dt"}),
    ],
)
def test_optax_labels_on_an_nnx_model(layer, ssm):
    extra = {"s5": {"blocks": 1}, "lssl": {"learn_A": True, "learn_B": True}}.get(layer, {})
    kw = {"N": 4, **extra}
    model = SequenceModel(
        1, 3, d_model=4, n_layers=1, layer=layer, layer_kwargs=kw, l_max=8, rngs=nnx.Rngs(0)
    )
    params = nnx.state(model, nnx.Param)
    labels = hippox.optax_labels(params)
    names = _leaf_names(params)
    flat = dict(jax.tree_util.tree_flatten_with_path(labels)[0])
    got_ssm = {names[p] for p, lab in flat.items() if lab == "ssm"}
    assert got_ssm == ssm
    # every SSM-labelled leaf sits inside the layer, and every leaf is labelled
    assert len(flat) == len(names)
    for path, lab in flat.items():
        if lab == "ssm":
            assert "layers" in str(path)


def test_optax_labels_on_linen_params():
    from hippox.linen import S4D

    params = S4D(H=3, N=4).init(jax.random.key(0), jnp.ones((1, 8, 3)))["params"]
    labels = hippox.optax_labels(params)
    assert labels == {
        "B": "ssm",
        "C": "default",
        "D": "default",
        "Lambda_im": "ssm",
        "Lambda_re": "ssm",
        "log_dt": "ssm",
    }


# ------------------------------------------------------------------ numpy reference


def _cosine(peak, step, warmup, total):
    """optax.warmup_cosine_decay_schedule(0, peak, warmup, total), written out."""
    if warmup > 0 and step < warmup:
        return peak * step / warmup
    frac = min(step - warmup, total - warmup) / (total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * frac))


def _adam_reference(params, grads_seq, rate_of, decay_of, b1=0.9, b2=0.999):
    """Runs Adam(W) in NumPy; ``rate_of(name, step)``, ``decay_of(name)`` per leaf."""
    names = _leaf_names(params)
    p = {k: np.asarray(v, np.float64) for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t, grads in enumerate(grads_seq):
        g = dict(jax.tree_util.tree_flatten_with_path(grads)[0])
        for k in p:
            lr = rate_of(names[k], t)
            if lr == 0.0 and rate_of(names[k], None) == 0.0:  # frozen
                continue
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            mh = m[k] / (1 - b1 ** (t + 1))
            vh = v[k] / (1 - b2 ** (t + 1))
            p[k] = p[k] - lr * (mh / (np.sqrt(vh) + EPS) + decay_of(names[k]) * p[k])
    return p


def _run(tx, params, grads_seq):
    state = tx.init(params)
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return dict(jax.tree_util.tree_flatten_with_path(params)[0]), state


def _grads(params, rng, steps):
    return [jax.tree.map(lambda a: rng.standard_normal(np.shape(a)), params) for _ in range(steps)]


SSM = {"Lambda_re", "Lambda_im", "P", "B", "log_dt", "A"}


def test_per_tensor_rates_and_no_decay_match_numpy_adam(rng):
    params = _s4_params("s4")
    rates = {"Lambda_re": 3e-3, "Lambda_im": 2e-3, "P": 5e-4, "log_dt": 1e-2}
    tx = ssm_optimizer(1e-2, ssm_learning_rate=1e-3, tensor_learning_rates=rates, weight_decay=0.1)
    grads = _grads(params, rng, 3)
    got, _ = _run(tx, params, grads)

    def rate_of(name, step):
        if name in SSM:
            return rates.get(name, 1e-3)
        return 1e-2

    want = _adam_reference(params, grads, rate_of, lambda n: 0.0 if n in SSM else 0.1)
    names = _leaf_names(params)
    assert set(names.values()) >= {"Lambda_re", "P", "B", "C", "D", "log_dt", "kernel"}
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-9, err_msg=names[k])


def test_rate_zero_freezes_a_tensor_and_keeps_no_state(rng):
    params = _s4_params("s4d")
    tx = ssm_optimizer(1e-2, tensor_learning_rates={"log_dt": 0.0, "Lambda_im": 0.0})
    got, state = _run(tx, params, _grads(params, rng, 4))
    names = _leaf_names(params)
    flat0 = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    moved = set()
    for k, name in names.items():
        if name in ("log_dt", "Lambda_im"):
            np.testing.assert_array_equal(got[k], flat0[k])
        else:
            assert np.all(got[k] != flat0[k]), name
            moved.add(name)
    assert {"Lambda_re", "B", "C"} <= moved
    # Adam keeps two moments per trainable entry; the frozen tensors have none.
    trainable = sum(np.size(v) for k, v in flat0.items() if names[k] not in ("log_dt", "Lambda_im"))
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
    assert sum(np.size(x) for x in floats) == 2 * trainable


def test_schedule_warmup_cosine_matches_closed_form(rng):
    params = {"layer": {"B": np.ones(3), "C": np.ones(3)}}
    total, warmup = 6, 2
    tx = ssm_optimizer(
        4e-2, ssm_learning_rate=1e-2, weight_decay=0.5, total_steps=total, warmup_steps=warmup
    )
    grads = _grads(params, rng, total + 2)  # past the end: the rate stays at 0
    got, _ = _run(tx, params, grads)

    def rate_of(name, step):
        peak = 1e-2 if name == "B" else 4e-2
        return peak if step is None else _cosine(peak, step, warmup, total)

    want = _adam_reference(params, grads, rate_of, lambda n: 0.0 if n == "B" else 0.5)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-12)


def test_schedules_pass_through_and_custom_names(rng):
    params = {"enc": {"w": np.ones(2)}, "ssm": {"Lambda_re": np.ones(2), "gate": np.ones(2)}}
    sched = optax.exponential_decay(1e-2, transition_steps=1, decay_rate=0.5)
    tx = ssm_optimizer(sched, ssm_learning_rate=1e-3, ssm_names={"Lambda_re", "gate"})
    grads = _grads(params, rng, 3)
    got, _ = _run(tx, params, grads)

    def rate_of(name, step):
        if name in ("Lambda_re", "gate"):
            return 1e-3
        return 1e-2 if step is None else 1e-2 * 0.5**step

    want = _adam_reference(params, grads, rate_of, lambda n: 0.0)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-12)


def test_trains_an_nnx_model_with_nnx_optimizer():
    model = SequenceModel(1, 2, d_model=4, n_layers=1, layer_kwargs={"N": 4}, rngs=nnx.Rngs(0))
    tx = ssm_optimizer(1e-2, tensor_learning_rates={"log_dt": 0.0})
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    log_dt0 = np.asarray(model.layers[0].log_dt[...])
    lam0 = np.asarray(model.layers[0].Lambda_re[...])
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 16, 1)), jnp.float32)
    y = jnp.arange(8) % 2

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(15)]
    assert losses[-1] < losses[0] - 0.02, losses  # seed 0: 0.697 -> 0.663
    np.testing.assert_array_equal(np.asarray(model.layers[0].log_dt[...]), log_dt0)
    assert np.any(np.asarray(model.layers[0].Lambda_re[...]) != lam0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"learning_rate": "fast"}, TypeError, "`learning_rate` must be a number >= 0"),
        ({"learning_rate": True}, TypeError, "`learning_rate` must be a number"),
        ({"learning_rate": -1e-3}, ValueError, "`learning_rate` must be >= 0"),
        ({"ssm_learning_rate": float("nan")}, ValueError, "`ssm_learning_rate` must be finite"),
        ({"tensor_learning_rates": {"C": 1e-3}}, ValueError, "`tensor_learning_rates` keys must"),
        ({"tensor_learning_rates": [("B", 1.0)]}, TypeError, "`tensor_learning_rates` must be"),
        (
            {"tensor_learning_rates": {"B": -1.0}},
            ValueError,
            r"`tensor_learning_rates\['B'\]` must be >= 0",
        ),
        ({"weight_decay": -0.1}, ValueError, "`weight_decay` must be >= 0"),
        ({"b2": 1.0}, ValueError, r"`b2` must be in \[0, 1\)"),
        ({"total_steps": 0}, ValueError, "`total_steps` must be an integer >= 1"),
        ({"total_steps": 10.5}, TypeError, "`total_steps` must be an integer"),
        ({"warmup_steps": 3}, ValueError, "`warmup_steps` must be 0 when `total_steps` is None"),
        ({"total_steps": 4, "warmup_steps": 4}, ValueError, "`warmup_steps` must be <"),
        ({"ssm_names": "B"}, TypeError, "`ssm_names` must be a collection of strings"),
        ({"ssm_names": {"B", "default"}}, ValueError, "`ssm_names` must not contain 'default'"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    kwargs = {"learning_rate": 1e-3, **kwargs}
    with pytest.raises(exc, match=match):
        ssm_optimizer(**kwargs)
