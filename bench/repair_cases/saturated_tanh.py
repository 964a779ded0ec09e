"""tanh layers initialised with large weights: the units sit at -1 or 1."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.15, random_state=6)
init = keras.initializers.RandomNormal(stddev=10.0)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="tanh", kernel_initializer=init),
    keras.layers.Dense(32, activation="tanh", kernel_initializer=init),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=15, batch_size=32)
