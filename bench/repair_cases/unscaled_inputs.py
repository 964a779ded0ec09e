"""Wine features as they come: proline ~1000 next to hue ~1."""
import keras
from sklearn.datasets import load_wine

X, y = load_wine(return_X_y=True)

model = keras.Sequential([
    keras.Input(shape=(13,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(3, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=30, batch_size=16)
