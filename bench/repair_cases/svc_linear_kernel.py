"""A support vector machine with a linear kernel on two moons."""
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

X, y = make_moons(n_samples=600, noise=0.15, random_state=12)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = SVC(kernel="linear")
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
