"""A random forest of three stumps-like trees (max_depth=2) on digits."""
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
