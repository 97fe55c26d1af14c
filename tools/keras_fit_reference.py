"""Reference numbers for `fused::tests::keras_fit_reference` (and the burn path's twin test).

A small Siamese network in the reference layout — Dense(relu) x3 shared by both inputs,
Euclidean distance sqrt(max(sum (a-b)^2, epsilon)), contrastive loss with margin 1, Keras
RMSprop defaults — with fixed weights and data, trained with `fit(shuffle=False)`, then
`predict`. Prints the per-epoch losses and the final distances as Rust arrays.

    python tools/keras_fit_reference.py    # keras 3.15.1, tensorflow-cpu 2.21.0
"""

import numpy as np
import keras
from keras import layers, ops

DIM, HIDDEN, PAIRS, EPOCHS, BATCH = 6, (5, 5, 4), 10, 3, 4


def pattern(n, scale, phase):
    # Deterministic, sign-mixed values: the Rust test builds the same arrays.
    return np.array([scale * np.sin(0.7 * i + phase) for i in range(n)], dtype=np.float32)


inp = keras.Input((DIM,))
x = inp
fan_in = DIM
for i, h in enumerate(HIDDEN):
    dense = layers.Dense(h, activation="relu")
    x = dense(x)
    dense.set_weights([pattern(fan_in * h, 0.6, i).reshape(fan_in, h), pattern(h, 0.1, i + 0.5)])
    fan_in = h
base = keras.Model(inp, x)
a_in, b_in = keras.Input((DIM,)), keras.Input((DIM,))


def euclid(t):
    a, b = t
    return ops.sqrt(ops.maximum(ops.sum(ops.square(a - b), axis=1, keepdims=True), keras.config.epsilon()))


d = layers.Lambda(euclid, output_shape=(1,))([base(a_in), base(b_in)])
model = keras.Model([a_in, b_in], d)


def contrastive(y, d):
    y = ops.cast(y, d.dtype)
    return ops.mean(y * ops.square(d) + (1 - y) * ops.square(ops.maximum(1.0 - d, 0.0)))


model.compile(loss=contrastive, optimizer=keras.optimizers.RMSprop())
a = pattern(PAIRS * DIM, 1.0, 0.0).reshape(PAIRS, DIM) ** 2
b = pattern(PAIRS * DIM, 1.0, 1.3).reshape(PAIRS, DIM) ** 2
y = np.array([i % 2 for i in range(PAIRS)], dtype=np.float32)
h = model.fit([a, b], y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0)
print("keras", keras.__version__, "backend", keras.backend.backend())
print("const KERAS_LOSSES: [f32; %d] = [%s];" % (EPOCHS, ", ".join(repr(float(v)) for v in h.history["loss"])))
dist = model.predict([a, b], verbose=0).ravel()
print("const KERAS_DISTANCES: [f32; %d] = [%s];" % (PAIRS, ", ".join(repr(float(v)) for v in dist)))
