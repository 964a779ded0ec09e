"""An RBF support vector machine regularised so hard (C=0.01) that it under-fits digits."""
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = make_pipeline(StandardScaler(), SVC(C=0.01))
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
