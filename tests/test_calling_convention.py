"""The sequence-layer calling convention in NNX and linen (hippox/nnx, hippox/linen).

``layer(u, *, seq_lengths=None, initial_carry=None, return_carry=False)`` for S4D, S4,
S5, LSSL and the HiPPO-RNN: padded = unpadded (each sequence run alone), padding
outputs zero, chunked = one call, prefill + step = one call (and step -> call),
gradients of a padded batch = sum of per-sequence gradients, linen = NNX, and clear
errors naming the argument for bad ``seq_lengths``, carries and flags.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hippox.linen
import hippox.nnx

H, L = 3, 8
LAYERS = ["s4d", "s4", "s5", "lssl", "hippo_rnn"]
# The NNX wrappers share one code path; the maths of padding and carries of S4, S5 and LSSL
# is tested layer by layer in test_layer_carry, so here those three run with -m slow.
WRAPPER_CASES = ["s4d", "hippo_rnn"] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ("s4", "s5", "lssl")
]


def _nnx(name, seed=0, **kw):
    rngs = nnx.Rngs(seed)
    if name == "s4d":
        return hippox.nnx.S4D(H, 4, rngs=rngs, **kw)
    if name == "s4":
        return hippox.nnx.S4(H, L, 4, rngs=rngs, **kw)
    if name == "s5":
        return hippox.nnx.S5(H, 4, rngs=rngs, **kw)
    if name == "lssl":
        return hippox.nnx.LSSL(H, 3, rngs=rngs, **kw)
    return hippox.nnx.HiPPORNN(H, H, N=3, rngs=rngs, **kw)


def _linen(name):
    if name == "s4d":
        return hippox.linen.S4D(H=H, N=4)
    if name == "s4":
        return hippox.linen.S4(H=H, l_max=L, N=4)
    if name == "s5":
        return hippox.linen.S5(H=H, N=4)
    if name == "lssl":
        return hippox.linen.LSSL(H=H, N=3)
    return hippox.linen.HiPPORNN(in_features=H, features=H, N=3)


def _u(rng, B=3, n=L):
    return jnp.asarray(rng.normal(size=(B, n, H)), jnp.float32)


def _close(a, b, rtol=1e-5, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def _params(layer):
    return nnx.to_pure_dict(nnx.state(layer, nnx.Param))


@pytest.mark.parametrize("name", WRAPPER_CASES)
def test_padded_equals_unpadded(name, rng):
    layer = _nnx(name)
    u = _u(rng)
    lengths = np.array([L, 5, 0])
    u_pad = u.at[1, 5:].set(1e3).at[2].set(-7.0)  # padding values must not matter
    carry, y = layer(u_pad, seq_lengths=jnp.asarray(lengths), return_carry=True)
    zero = layer.initialize_carry(())
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(y[b, n:], 0.0)
        c_b = jax.tree.map(lambda x, b=b: x[b], carry)
        if n == 0:
            _close(c_b, zero, atol=0)
            continue
        c_ref, y_ref = layer(u_pad[b : b + 1, :n], return_carry=True)
        _close(y[b, :n], y_ref[0])
        _close(c_b, jax.tree.map(lambda x: x[0], c_ref))


@pytest.mark.parametrize("name", WRAPPER_CASES)
def test_chunks_and_step_continue_one_call(name, rng):
    layer = _nnx(name)
    u = _u(rng, B=2)
    c_full, y_full = layer(u, return_carry=True)
    # three chunks, the carry passed along
    carry, ys = layer.initialize_carry((2,)), []
    for a, b in [(0, 3), (3, 4), (4, L)]:
        carry, y = layer(u[:, a:b], initial_carry=carry, return_carry=True)
        ys.append(y)
    _close(jnp.concatenate(ys, 1), y_full, rtol=2e-5, atol=2e-5)
    _close(carry, c_full, rtol=2e-5, atol=2e-5)
    # prefill 5 positions, then step mode; then a call continues from the step's carry
    carry, _ = layer(u[:, :5], return_carry=True)
    sp = layer.setup_step()
    carry, y5 = layer.step(carry, u[:, 5], sp)
    _close(y5, y_full[:, 5], rtol=2e-5, atol=2e-5)
    carry, y_rest = layer(u[:, 6:], initial_carry=carry, return_carry=True)
    _close(y_rest, y_full[:, 6:], rtol=2e-5, atol=2e-5)
    _close(carry, c_full, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["s4d", "hippo_rnn"])
def test_unbatched_and_scalar_length(name, rng):
    layer = _nnx(name)
    u = _u(rng, B=1)[0]
    carry, y = layer(u, seq_lengths=jnp.asarray(5), return_carry=True)
    c_ref, y_ref = layer(u[:5], return_carry=True)
    _close(y[:5], y_ref)
    np.testing.assert_array_equal(y[5:], 0.0)
    _close(carry, c_ref)


@pytest.mark.parametrize("name", ["s4d", "s5", "hippo_rnn"])
def test_gradients_through_masks(name, rng):
    # d/dparams of a padded batch's loss = the sum over sequences of the unpadded losses'
    layer = _nnx(name)
    graphdef, params = nnx.split(layer)
    u = _u(rng, B=2)
    lengths = [L, 4]
    w = jnp.asarray(rng.normal(size=(L, H)), jnp.float32)

    def loss(p, u, n):
        carry, y = nnx.merge(graphdef, p)(u, seq_lengths=n, return_carry=True)
        c = jax.tree.leaves(carry)[0]
        return jnp.sum(y * w[: u.shape[1]]) + jnp.sum(jnp.abs(c) ** 2)

    grad = jax.jit(jax.grad(loss))  # one program per shape (op-by-op grads compile far more)
    g_pad = grad(params, u, jnp.asarray(lengths))
    g_ref = [grad(params, u[b : b + 1, :n], jnp.asarray([n])) for b, n in enumerate(lengths)]
    _close(g_pad, jax.tree.map(lambda a, b: a + b, *g_ref), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_linen_equals_nnx(name, rng):
    layer, lin = _nnx(name), _linen(name)
    u = _u(rng, B=2)
    variables = {"params": _params(layer)}
    lengths = jnp.asarray([L, 6])
    c0 = layer.initialize_carry((2,))
    _close(lin.initialize_carry((2,)), c0, atol=0)
    carry, y = layer(u, seq_lengths=lengths, return_carry=True)
    carry_l, y_l = lin.apply(variables, u, seq_lengths=lengths, return_carry=True)
    _close(y_l, y)
    _close(carry_l, carry)
    # a carry from linen continues in NNX and vice versa
    _, y2 = layer(u, initial_carry=carry_l, return_carry=True)
    _close(lin.apply(variables, u, initial_carry=carry), y2)


def test_step_rescale_forwarded(rng):
    # every layer takes step_rescale in __call__ and setup_step; 2 x dt is the layer with
    # log_dt + log 2 (S5's log_dt is per mode, S4D/S4/LSSL's per channel)
    u = _u(rng, B=1)
    for name in ("s4d", "s5", "lssl"):
        layer = _nnx(name)
        fast = _nnx(name)
        fast.log_dt[...] = layer.log_dt[...] + jnp.log(2.0)
        _close(layer(u, step_rescale=2.0), fast(u), rtol=1e-4, atol=1e-5)
        _, y0 = layer.step(
            layer.initialize_carry((1,)), u[:, 0], layer.setup_step(step_rescale=2.0)
        )
        _close(y0, fast(u)[:, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_bad_input(name, rng):
    layer = _nnx(name)
    u = _u(rng, B=2)
    with pytest.raises(ValueError, match="`seq_lengths`"):
        layer(u, seq_lengths=jnp.asarray([3]))
    with pytest.raises(TypeError, match="`seq_lengths`"):
        layer(u, seq_lengths=jnp.asarray([3.0, 4.0]))
    with pytest.raises(ValueError, match="`seq_lengths`"):
        layer(u, seq_lengths=jnp.asarray([3, L + 1]))
    with pytest.raises(TypeError, match="`return_carry`"):
        layer(u, return_carry="yes")
    carry = layer.initialize_carry((2,))
    with pytest.raises(ValueError, match="`initial_carry.*batch shape"):
        layer(u, initial_carry=layer.initialize_carry((3,)))
    with pytest.raises(TypeError, match="`initial_carry"):
        layer(u, initial_carry=(carry, carry))
    wrong = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.int8), carry)
    with pytest.raises(TypeError, match="`initial_carry.*dtype"):
        layer(u, initial_carry=wrong)
    other = {  # a layer of another size
        "s4d": lambda: hippox.nnx.S4D(H, 6, rngs=nnx.Rngs(0)),
        "s4": lambda: hippox.nnx.S4(H, L, 6, rngs=nnx.Rngs(0)),
        "s5": lambda: hippox.nnx.S5(H, 8, rngs=nnx.Rngs(0)),
        "lssl": lambda: hippox.nnx.LSSL(H, 5, rngs=nnx.Rngs(0)),
        "hippo_rnn": lambda: hippox.nnx.HiPPORNN(H, H, N=5, rngs=nnx.Rngs(0)),
    }[name]()
    with pytest.raises(ValueError, match="`initial_carry"):
        layer(u, initial_carry=other.initialize_carry((2,)))


def test_jit_with_carry(rng):
    layer = _nnx("s4d")
    u = _u(rng, B=2)

    @functools.partial(nnx.jit, static_argnames="n")
    def chunk(layer, u, carry, n):
        return layer(u[:, :n], initial_carry=carry, return_carry=True)

    carry, y1 = chunk(layer, u, layer.initialize_carry((2,)), 5)
    _close(y1, layer(u[:, :5]))
    carry2, _ = layer(u[:, :5], return_carry=True)
    _close(carry, carry2)
