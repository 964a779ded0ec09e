"""k-nearest neighbours with k=400 on digits: every vote is the whole neighbourhood of several classes."""
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
model = KNeighborsClassifier(n_neighbors=400)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
