"""k-nearest neighbours on raw wine, with its choices declared in mlops.yaml so that search can tune them."""
import pandas as pd
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_cli

p = mlops_cli.params()
wines = pd.read_csv("wines.csv")
X, y = wines.drop("Class", axis=1), wines["Class"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y)

model = KNeighborsClassifier(n_neighbors=p["n_neighbors"], weights=p["weights"])
if p["scale"]:
    model = make_pipeline(StandardScaler(), model)
model.fit(X_train, y_train)
print("accuracy:", accuracy_score(y_test, model.predict(X_test)))
