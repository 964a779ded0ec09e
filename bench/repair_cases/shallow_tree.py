"""A decision tree of depth 1 on two noisy moons: too few splits for the curved boundary."""
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

X, y = make_moons(n_samples=600, noise=0.2, random_state=13)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = DecisionTreeClassifier(max_depth=1, random_state=0)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
