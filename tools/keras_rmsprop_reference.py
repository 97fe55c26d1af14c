# Reference values for tests in src/optim.rs: two RMSprop steps in Keras 3 with its defaults.
# Run: KERAS_BACKEND=jax python tools/keras_rmsprop_reference.py
import numpy as np
import keras

w0 = np.array([0.5, -0.25, 1.0, 0.0, 2.0], dtype=np.float32)
g1 = np.array([0.1, -0.2, 0.001, 3.0, -1e-4], dtype=np.float32)
g2 = np.array([-0.05, 0.4, 0.002, 1.0, 5e-4], dtype=np.float32)

v = keras.Variable(w0)
opt = keras.optimizers.RMSprop()  # lr 0.001, rho 0.9, momentum 0, epsilon 1e-7, centered False
print("keras", keras.__version__, "backend", keras.backend.backend())
print("lr", float(opt.learning_rate), "rho", opt.rho, "eps", opt.epsilon, "momentum", opt.momentum)
opt.apply_gradients([(g1, v)])
print("after step 1:", np.asarray(v.value).tolist())
opt.apply_gradients([(g2, v)])
print("after step 2:", np.asarray(v.value).tolist())
