"""The whole data set as one batch: one step per epoch, so 15 epochs are 15 steps."""
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = X / 16.0
model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=15, batch_size=len(X))
