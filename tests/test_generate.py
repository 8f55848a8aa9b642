"""The autoregressive sampler (hippox/nnx/generate.py, hippox/linen/generate.py).

Checked against a slow reference that re-runs the full forward pass on the growing
sequence at each position and draws with the same keys: greedy decoding gives the same
tokens, sampling with the same keys too; variable-length prompts; errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hippox.linen
import hippox.nnx

V, STEPS = 5, 5


def _lm(layer="s4d", seed=0):
    kw = {"s4d": {"N": 4}, "hippo_rnn": {"N": 3}}[layer]
    return hippox.nnx.SequenceModel(
        V, V, d_model=8, n_layers=2, layer=layer, layer_kwargs=kw, pooling=None, rngs=nnx.Rngs(seed)
    )


def _reference(forward, prompts, steps, key, temperature):
    """Full forward pass on each growing sequence for every new token.

    Token ``t`` of the batch is one draw ``categorical(keys[t], logits / temperature)``
    over the ``(batch, V)`` logits, as the sampler documents.
    """
    keys = jax.random.split(key, steps)
    seqs = [list(p) for p in prompts]
    for t in range(steps):
        logits = jnp.stack(
            [
                forward(jax.nn.one_hot(jnp.asarray(s), V, dtype=jnp.float32)[None])[0, -1]
                for s in seqs
            ]
        )
        if temperature == 0:
            new = jnp.argmax(logits, axis=-1)
        else:
            new = jax.random.categorical(keys[t], logits / temperature, axis=-1)
        for s, tok in zip(seqs, np.asarray(new), strict=True):
            s.append(int(tok))
    return [s[len(p) :] for s, p in zip(seqs, prompts, strict=True)]


@pytest.mark.parametrize("layer", ["s4d", pytest.param("hippo_rnn", marks=pytest.mark.slow)])
def test_matches_full_forward_reference(layer, rng):
    model = _lm(layer)
    model.eval()
    prompts = [list(rng.integers(V, size=4)), list(rng.integers(V, size=2))]
    padded = jnp.asarray([prompts[0], prompts[1] + [0, 0]])
    lengths = jnp.asarray([4, 2])
    key = jax.random.key(int(rng.integers(1000)))
    # The full forward, compiled once per length (op-by-op it compiles every primitive
    # for each of the growing lengths, which took minutes).
    forward = nnx.jit(lambda m, x: m(x))
    for temperature in (0.0, 0.7):
        out = hippox.nnx.generate(
            model, padded, STEPS, key=key, temperature=temperature, prompt_lengths=lengths
        )
        assert out.shape == (2, STEPS) and out.dtype == jnp.int32
        ref = _reference(lambda x: forward(model, x), prompts, STEPS, key, temperature)
        np.testing.assert_array_equal(out, ref)


def test_linen_equals_nnx(rng):
    model = _lm("s4d", seed=3)
    model.eval()
    lin = hippox.linen.SequenceModel(
        d_output=V, d_model=8, n_layers=2, layer_kwargs={"N": 4}, pooling=None
    )
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    params = {
        f"{k}_{i}" if isinstance(v, dict) and all(isinstance(j, int) for j in v) else k: (
            v[i] if isinstance(v, dict) and all(isinstance(j, int) for j in v) else v
        )
        for k, v in params.items()
        for i in (v if isinstance(v, dict) and all(isinstance(j, int) for j in v) else [None])
    }
    variables = {"params": params}
    prompt = jnp.asarray(rng.integers(V, size=(2, 3)))
    key = jax.random.key(7)
    out_l = hippox.linen.generate(lin, variables, prompt, STEPS, key=key, temperature=1.3)
    out_n = hippox.nnx.generate(model, prompt, STEPS, key=key, temperature=1.3)
    np.testing.assert_array_equal(out_l, out_n)


def test_custom_embedding_and_training_mode_untouched(rng):
    model = hippox.nnx.SequenceModel(
        3,
        V,
        d_model=8,
        n_layers=1,
        layer_kwargs={"N": 4},
        pooling=None,
        dropout=0.5,
        rngs=nnx.Rngs(0),
    )
    table = jnp.asarray(rng.normal(size=(V, 3)), jnp.float32)

    def embed(tokens):
        return table[tokens]

    prompt = jnp.asarray([[1, 2]])
    out = hippox.nnx.generate(model, prompt, 4, temperature=0.0, embed=embed)
    assert not model.dropout.deterministic  # the model itself stays in training mode
    model.eval()
    tokens = [1, 2]
    forward = nnx.jit(lambda m, x: m(x))
    for _ in range(4):  # greedy reference with the table embedding
        tokens.append(int(jnp.argmax(forward(model, table[jnp.asarray(tokens)][None])[0, -1])))
    np.testing.assert_array_equal(out[0], tokens[2:])


def test_errors():
    model = _lm()
    with pytest.raises(ValueError, match="`key` must be"):
        hippox.nnx.generate(model, jnp.asarray([[1]]), 3)
    with pytest.raises(TypeError, match="`prompt` must be an array of integer"):
        hippox.nnx.generate(model, jnp.ones((1, 2)), 3, temperature=0.0)
    with pytest.raises(ValueError, match="`prompt_lengths` must be >= 1"):
        hippox.nnx.generate(
            model, jnp.asarray([[1, 2]]), 3, temperature=0.0, prompt_lengths=jnp.asarray([0])
        )
    with pytest.raises(ValueError, match="`temperature`"):
        hippox.nnx.generate(model, jnp.asarray([[1]]), 3, temperature=-1.0)
    with pytest.raises(TypeError, match="`steps`"):
        hippox.nnx.generate(model, jnp.asarray([[1]]), 2.5, temperature=0.0)
    pooled = hippox.nnx.SequenceModel(V, V, d_model=4, n_layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="pooling=None"):
        hippox.nnx.generate(pooled, jnp.asarray([[1]]), 3, temperature=0.0)
    wide = hippox.nnx.SequenceModel(2, V, d_model=4, n_layers=1, pooling=None, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`embed` must be given"):
        hippox.nnx.generate(wide, jnp.asarray([[1]]), 3, temperature=0.0)
