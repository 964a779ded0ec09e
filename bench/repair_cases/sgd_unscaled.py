"""A linear SGD classifier on raw wine columns (proline ~1000 next to hue ~1)."""
from sklearn.datasets import load_wine
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=2, stratify=y)
model = SGDClassifier(random_state=0)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
