"""Three classes, but the output layer is ReLU under a cross-entropy loss."""
import keras
from sklearn.datasets import make_blobs

X, y = make_blobs(n_samples=600, centers=3, cluster_std=1.5, random_state=4)

model = keras.Sequential([
    keras.Input(shape=(2,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(3, activation="relu"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, batch_size=32)
