"""A small neural network stopped after 15 iterations."""
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

X, y = make_moons(n_samples=600, noise=0.15, random_state=10)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = MLPClassifier(max_iter=15, random_state=0)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
