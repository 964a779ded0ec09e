"""binary_crossentropy on three classes with a one-unit sigmoid output."""
import keras
from sklearn.datasets import load_iris

X, y = load_iris(return_X_y=True)
model = keras.Sequential([
    keras.Input(shape=(4,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=60, batch_size=16)
