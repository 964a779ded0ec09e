"""Adam with a learning rate of 1e-5: every step is tiny."""
import keras
from sklearn.datasets import make_circles

X, y = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=1)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-5), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
