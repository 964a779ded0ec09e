"""A newcomer's dense network on the wine data, raw features: below 0.8 held-out until mlops tweaks it."""
import keras
from sklearn.datasets import load_wine

import mlops_cli

p = mlops_cli.params()
data = load_wine()
X, y = data.data, data.target

model = keras.Sequential([keras.Input(shape=(13,))])
for _ in range(p["hidden_layers"]):
    model.add(keras.layers.Dense(p["units"], activation="relu"))
model.add(keras.layers.Dense(2, activation="relu"))
model.add(keras.layers.Dense(3, activation="softmax"))
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=p["learning_rate"]),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=p["epochs"], batch_size=32)
