"""A Keras logistic regression on two moons: no hidden layer, so the boundary is a straight line."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.1, random_state=5)
model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=40, batch_size=32)
