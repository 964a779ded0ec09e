# The seeds' wine classifier, exactly as a newcomer writes it: raw inputs, no validation.
import pandas as pd
from keras.layers import Dense
from keras.models import Sequential
from keras.optimizers import RMSprop

dataset = pd.read_csv('wines.csv')
y = dataset['Class']
y_cat = pd.get_dummies(y)
X = dataset.drop('Class', axis=1)

model = Sequential()
model.add(Dense(units=5, input_shape=(13,), activation='relu'))
model.add(Dense(units=8, activation='relu'))
model.add(Dense(units=2, activation='relu'))
model.add(Dense(units=3, activation='softmax'))
model.compile(optimizer=RMSprop(learning_rate=0.01), loss='categorical_crossentropy', metrics=['accuracy'])

model.fit(X, y_cat, epochs=100)
model.save('modelsave.h5')
