"""Two rings need a curved boundary; one hidden layer of two units cannot draw it."""
import keras
from sklearn.datasets import make_circles

X, y = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=8)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(2, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=40, batch_size=32)
