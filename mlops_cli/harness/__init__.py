"""The harness: the only code that imports user code, and it runs only inside the training process.

`python -m mlops_cli.harness --workspace W --run ID` runs the entry script of run ID unchanged, hands it its
parameters, captures held-out metrics, makes Keras training resumable, and saves the trained model.
"""
