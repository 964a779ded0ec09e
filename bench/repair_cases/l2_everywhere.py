"""L2 of 1.0 on every layer: the loss is almost all penalty and the weights stay near zero."""
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = X / 16.0
reg = keras.regularizers.l2(1.0)
model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(64, activation="relu", kernel_regularizer=reg),
    keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
