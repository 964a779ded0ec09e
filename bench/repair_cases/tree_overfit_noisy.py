"""An unlimited decision tree on noisy labels: it memorises the noise (training 1.0, held-out far lower)."""
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

X, y = make_classification(n_samples=800, n_features=10, n_informative=4, flip_y=0.08, class_sep=1.5,
                           random_state=4)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
model = DecisionTreeClassifier(random_state=0)
model.fit(X_train, y_train)
print("accuracy", model.score(X_test, y_test))
