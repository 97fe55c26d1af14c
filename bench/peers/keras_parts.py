"""The Keras reference program's distance layer and loss, shared by the Keras peers
(imported after keras, with KERAS_BACKEND already set)."""

import keras
from keras import ops


def euclidean_distance(vects):
    x, y = vects
    sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
    return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))


def contrastive_loss(y_true, y_pred, margin=1.0):
    y_true = ops.cast(y_true, y_pred.dtype)
    square_pred = ops.square(y_pred)
    margin_square = ops.square(ops.maximum(margin - y_pred, 0.0))
    return ops.mean(y_true * square_pred + (1.0 - y_true) * margin_square)
