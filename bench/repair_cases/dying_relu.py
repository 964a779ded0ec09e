"""A deep, narrow ReLU network on a large learning rate: most units stop firing."""
import keras
from sklearn.datasets import make_circles

X, y = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=5)

model = keras.Sequential([keras.Input(shape=(2,))])
for _ in range(5):
    model.add(keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(-1.0)))
model.add(keras.layers.Dense(1, activation="sigmoid"))
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
