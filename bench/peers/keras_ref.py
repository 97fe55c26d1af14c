"""The reference Siamese model in Keras 3 (TensorFlow backend), one configuration per process.

Same flags and JSON line as `examples/peer_bench.rs` (see common.py):

    python bench/peers/keras_ref.py --mode train --dim 784 --batch 128 --pairs 8192 --epochs 2
    python bench/peers/keras_ref.py --mode train --model conv --batch 128 --pairs 1024
    python bench/peers/keras_ref.py --mode train --model koch-cpu --batch 32 --pairs 1024

The functional-API model of the reference program: a base network Dense(128, relu) x3
(Keras defaults: Glorot-uniform kernels, zero biases) called on input A and on input B, a
Lambda Euclidean distance sqrt(max(sum (a - b)^2, epsilon)) of shape (batch, 1), the
contrastive loss (margin 1, label 1 = similar), compiled with RMSprop() (lr 0.001, rho 0.9,
epsilon 1e-7, no momentum) and Keras's default jit_compile="auto". `--model conv` swaps
the base network for the faces conv preset (common.py), `--model koch-cpu` for the koch-cpu
preset, channels-last, Keras default initialisers. Training is
`model.fit(..., shuffle=True, verbose=0)`, predicting is `model.predict(..., batch_size)`.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (takes the start time before tensorflow is imported)

args = common.parse_args("Keras 3 (TensorFlow) reference Siamese model benchmark")

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)

import keras  # noqa: E402
from keras import layers  # noqa: E402
from keras_parts import contrastive_loss, euclidean_distance  # noqa: E402


def base_network(dim):
    return keras.Sequential(
        [
            keras.Input((dim,)),
            layers.Dense(128, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(128, activation="relu"),
        ],
        name="base",
    )


def conv_network():
    """The faces conv preset (common.py), channels-last, Keras default initialisers."""
    return keras.Sequential(
        [
            keras.Input((common.CONV_HEIGHT * common.CONV_WIDTH,)),
            layers.Reshape((common.CONV_HEIGHT, common.CONV_WIDTH, 1)),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.2),
            layers.Dense(128),
        ],
        name="base",
    )


def koch_cpu_network():
    """The koch-cpu conv preset (common.py), channels-last, Keras default initialisers."""
    return keras.Sequential(
        [
            keras.Input((common.KOCH_CPU_HEIGHT * common.KOCH_CPU_WIDTH,)),
            layers.Reshape((common.KOCH_CPU_HEIGHT, common.KOCH_CPU_WIDTH, 1)),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(256, activation="sigmoid"),
        ],
        name="base",
    )


NETWORKS = {"conv": conv_network, "koch-cpu": koch_cpu_network}


def build(dim):
    base = NETWORKS[args.model]() if args.model in NETWORKS else base_network(dim)
    if args.summary:
        base.summary(print_fn=lambda line, **_: print(line, file=sys.stderr))
    input_a = keras.Input((dim,))
    input_b = keras.Input((dim,))
    distance = layers.Lambda(euclidean_distance, output_shape=(1,))(
        [base(input_a), base(input_b)]
    )
    model = keras.Model([input_a, input_b], distance)
    model.compile(loss=contrastive_loss, optimizer=keras.optimizers.RMSprop())
    return model


keras.utils.set_random_seed(args.seed)
model = build(args.dim)
params = model.get_layer("base").count_params()

if args.mode == "startup":
    common.emit("keras", args, time.perf_counter() - common.STARTED, 0, params=params)
    sys.exit(0)

a, b, y = common.random_pairs(args.pairs, args.dim, args.seed + 1)
n = args.pairs

if args.mode == "train":
    model.fit([a, b], y, epochs=1, batch_size=args.batch, shuffle=True, verbose=0)  # warm-up
    t = time.perf_counter()
    history = model.fit(
        [a, b], y, epochs=args.epochs, batch_size=args.batch, shuffle=True, verbose=0
    )
    seconds = time.perf_counter() - t
    loss = float(history.history["loss"][-1])
    common.emit("keras", args, seconds, n * args.epochs, loss=round(loss, 6), params=params)
else:  # predict
    model.predict([a, b], batch_size=args.batch, verbose=0)  # warm-up
    t = time.perf_counter()
    for _ in range(args.epochs):
        model.predict([a, b], batch_size=args.batch, verbose=0)
    seconds = time.perf_counter() - t
    common.emit("keras", args, seconds, n * args.epochs, params=params)
