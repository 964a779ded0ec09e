"""A binary task with a single softmax output unit: softmax over one unit is always 1."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.15, random_state=2)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="softmax"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
