"""A deep sigmoid network trained with plain SGD on two rings."""
import keras
from sklearn.datasets import make_circles

X, y = make_circles(n_samples=600, noise=0.08, factor=0.5, random_state=0)

model = keras.Sequential([keras.Input(shape=(2,))])
for _ in range(6):
    model.add(keras.layers.Dense(16, activation="sigmoid"))
model.add(keras.layers.Dense(1, activation="sigmoid"))
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
