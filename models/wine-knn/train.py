# k-nearest neighbours on the wine data, as a newcomer writes it: raw columns straight from the CSV.
import joblib
import pandas as pd
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

wines = pd.read_csv("wines.csv")
X = wines.drop("Class", axis=1)
y = wines["Class"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y)

model = KNeighborsClassifier()  # 5 neighbours
model.fit(X_train, y_train)
print("accuracy:", accuracy_score(y_test, model.predict(X_test)))
joblib.dump(model, "model.joblib")
