"""A straight line fitted to a sine: the target is not linear in the input."""
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

rng = np.random.default_rng(0)
X = rng.uniform(-3, 3, size=(500, 1))
y = np.sin(2 * X[:, 0]) + 0.05 * rng.normal(size=500)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = LinearRegression()
model.fit(X_train, y_train)
print("r2", model.score(X_test, y_test))
