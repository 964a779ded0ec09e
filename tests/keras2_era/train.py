# A Keras 2-era training script, written for mlops' tests in the style of pre-Keras 3 tutorials:
# np_utils, Adam(lr=...), ImageDataGenerator + fit_generator, metrics=['acc'], save_weights('w.h5'), plt.show().
import matplotlib.pyplot as plt
from keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
from keras.models import Sequential
from keras.optimizers import Adam
from keras.preprocessing.image import ImageDataGenerator
from keras.utils import np_utils
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

EPOCHS = 12

digits = load_digits()
X = digits.images.reshape(-1, 8, 8, 1).astype("float32") / 16.0
Y = np_utils.to_categorical(digits.target, 10)
X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.2, random_state=1)

model = Sequential()
model.add(Conv2D(16, (3, 3), activation="relu", input_shape=(8, 8, 1)))
model.add(MaxPooling2D((2, 2)))
model.add(Flatten())
model.add(Dense(32, activation="relu"))
model.add(Dense(10, activation="softmax"))
model.compile(optimizer=Adam(lr=0.005), loss="categorical_crossentropy", metrics=["acc"])

datagen = ImageDataGenerator(width_shift_range=0.05)
history = model.fit_generator(datagen.flow(X_train, Y_train, batch_size=8), steps_per_epoch=len(X_train) // 8,
                              epochs=EPOCHS, validation_data=(X_test, Y_test), verbose=2)
print("training accuracy:", history.history["acc"][-1])
model.save_weights("w.h5")
plt.plot(history.history["acc"])
plt.plot(history.history["val_acc"])
plt.show()
