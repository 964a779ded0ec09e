"""SGD with heavy momentum and a large step: the loss swings up and down."""
import keras
from sklearn.datasets import make_moons

X, y = make_moons(n_samples=600, noise=0.15, random_state=9)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0, momentum=0.9), loss="binary_crossentropy",
              metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
