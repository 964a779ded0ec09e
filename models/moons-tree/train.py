"""An unbounded decision tree on noisy two-moons data: it memorises the noise (training accuracy 1.0)."""
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

X, y = make_moons(n_samples=1000, noise=0.35, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)

tree = DecisionTreeClassifier()
tree.fit(X_train, y_train)
print("train accuracy:", tree.score(X_train, y_train))
print("test accuracy:", tree.score(X_test, y_test))
