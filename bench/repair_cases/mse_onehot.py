"""One-hot classes fitted with mean squared error and plain SGD."""
import keras
from sklearn.datasets import load_digits

digits = load_digits()
X, y = digits.data / 16.0, keras.utils.to_categorical(digits.target, 10)

model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["accuracy"])
model.fit(X, y, epochs=10, batch_size=32)
