"""The Keras mnist_siamese recipe in Keras 3 (TensorFlow), mirroring `siamese train --config configs/mnist.toml`.

    SIAMESE_DATA_DIR=../shared/data python bench/peers/keras_mnist.py [--epochs 20] [--threads 2]

Data: mnist_data.py (the test set split 8,000 / 2,000 by image, Keras pairs within each part),
the same pairs as torch_mnist.py for the same seed.
Model, as in the recipe: a base network Dense(128, relu), Dropout(0.1), Dense(128, relu),
Dropout(0.1), Dense(128, relu) (Keras defaults: Glorot-uniform kernels, zero biases) called on
both inputs; a Lambda Euclidean distance sqrt(max(sum (a - b)^2, epsilon)); the contrastive
loss (margin 1, label 1 = similar); RMSprop() (lr 0.001, rho 0.9, epsilon 1e-7) and an
accuracy metric at d < 0.5; `fit(..., validation_data=..., epochs=20, batch_size=128,
shuffle=True, verbose=0)`. Test pair accuracy at d < 0.5.

Prints one JSON line: {"impl": "keras", "mode": "mnist", "seconds": <training>, ...}.
"""

import os
import sys
import time

STARTED = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402

args, threads = mnist_data.parse_args(__doc__.splitlines()[0])

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402
from keras_parts import contrastive_loss, euclidean_distance  # noqa: E402

pairs, images = mnist_data.prepare(mnist_data.data_dir(args), args.seed)
tr_a, tr_b, tr_y = pairs["train"]
va_a, va_b, va_y = pairs["val"]
te_a, te_b, te_y = pairs["test"]


def accuracy(y_true, y_pred):
    return ops.mean(ops.equal(ops.cast(y_true, "float32"), ops.cast(y_pred < args.threshold, "float32")))


keras.utils.set_random_seed(args.seed)
base = keras.Sequential(
    [
        keras.Input((784,)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(128, activation="relu"),
    ],
    name="base",
)
input_a = keras.Input((784,))
input_b = keras.Input((784,))
distance = layers.Lambda(euclidean_distance, output_shape=(1,))([base(input_a), base(input_b)])
model = keras.Model([input_a, input_b], distance)
model.compile(loss=contrastive_loss, optimizer=keras.optimizers.RMSprop(), metrics=[accuracy])

t0 = time.perf_counter()
history = model.fit(
    [tr_a, tr_b],
    tr_y,
    validation_data=([va_a, va_b], va_y),
    epochs=args.epochs,
    batch_size=args.batch,
    shuffle=True,
    verbose=0,
)
train_seconds = time.perf_counter() - t0

dt = model.predict([te_a, te_b], batch_size=1024, verbose=0)
test_accuracy = float(np.mean((dt < args.threshold).astype(np.float32) == te_y))
mnist_data.emit(
    "keras", args, threads, images, pairs, train_seconds, STARTED, test_accuracy,
    float(history.history["loss"][-1]) if args.epochs else None,
)
