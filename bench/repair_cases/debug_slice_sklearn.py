"""A debug slice left in: the classifier is fitted on the first 60 of 1437 training rows."""
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = LogisticRegression(max_iter=2000)
model.fit(X_train[:60], y_train[:60])
print("accuracy", model.score(X_test, y_test))
