"""The classic Keras reference Siamese program, end to end (Keras 3, TensorFlow backend).

Timed against `target/release/examples/seed` by bench/run.py (wall time and peak RSS of the
whole process: interpreter, imports, build, 20 epochs, predict, print):

    python bench/peers/keras_seed.py

Changes from the original text, all needed to run it on Keras 3: three distinct Dense layers
(the original `[Dense(128, activation='relu')] * 3` repeats one layer object, which cannot
take a 100-dim and then a 128-dim input), `keras.ops` instead of the removed `keras.backend`
math, and `output_shape` on the Lambda layer. If RAYON_NUM_THREADS (or BENCH_THREADS) is set,
TensorFlow gets that many intra- and inter-op threads, as every other benchmark process does.
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

for _name in ("BENCH_THREADS", "RAYON_NUM_THREADS"):
    if os.environ.get(_name, "").isdigit():
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ[_name]))
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ[_name]))
        break

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402
from keras.layers import Dense, Input, Lambda  # noqa: E402
from keras.models import Model, Sequential  # noqa: E402
from keras.optimizers import RMSprop  # noqa: E402


def euclidean_distance(vects):
    x, y = vects
    sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
    return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))


def contrastive_loss(y_true, y_pred):
    margin = 1
    y_true = ops.cast(y_true, y_pred.dtype)
    square_pred = ops.square(y_pred)
    margin_square = ops.square(ops.maximum(margin - y_pred, 0))
    return ops.mean(y_true * square_pred + (1 - y_true) * margin_square)


input_dim = 100
base_network = Sequential(
    [
        Input((input_dim,)),
        Dense(128, activation="relu"),
        Dense(128, activation="relu"),
        Dense(128, activation="relu"),
    ]
)

input_a = Input(shape=(input_dim,))
input_b = Input(shape=(input_dim,))
processed_a = base_network(input_a)
processed_b = base_network(input_b)
distance = Lambda(euclidean_distance, output_shape=(1,))([processed_a, processed_b])
model = Model([input_a, input_b], distance)
model.compile(loss=contrastive_loss, optimizer=RMSprop())
model.summary()

pairs = np.random.rand(100, 2, input_dim)
labels = np.random.randint(0, 2, 100)
model.fit([pairs[:, 0], pairs[:, 1]], labels, epochs=20, batch_size=32)

new_pair = [np.random.rand(1, input_dim), np.random.rand(1, input_dim)]
print(model.predict(new_pair))
_ = layers  # the original imported the layers module too
