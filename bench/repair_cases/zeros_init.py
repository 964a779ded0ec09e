"""Hidden kernels initialised to zeros: every unit computes the same thing and gets the same gradient."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.15, random_state=3)
model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="tanh", kernel_initializer="zeros"),
    keras.layers.Dense(32, activation="tanh", kernel_initializer="zeros"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=40, batch_size=32)
