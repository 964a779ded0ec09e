"""SGD with a learning rate of 10: the loss blows up in the first steps."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.15, random_state=3)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=10.0), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
