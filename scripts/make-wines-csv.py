"""Write wines.csv (scikit-learn's bundled wine data, sorted by class, as the seeds' CSV is) for the examples."""
import sys
from pathlib import Path

from sklearn.datasets import load_wine

frame = load_wine(as_frame=True).frame.rename(columns={"target": "Class"})
frame["Class"] = frame["Class"] + 1
frame = frame[["Class"] + [c for c in frame.columns if c != "Class"]]
for target in sys.argv[1:] or ["models/wine-seed/wines.csv"]:
    frame.to_csv(Path(target), index=False)
