"""Which Keras 2-era idioms run in a candidate legacy runtime, as is and with the harness' compat layer.

    python bench/keras2_idioms.py PYTHON [PYTHON ...]      each PYTHON an interpreter of one candidate, e.g.
        a venv with tensorflow-cpu==2.15.1 (Keras 2.15), and one with tf-keras (TF_USE_LEGACY_KERAS=1 is set for
        an interpreter that has tf_keras, and only for it)

Each idiom (the ones public Keras 2 scripts use) is tried through `import keras` and through `tensorflow.keras`,
plus the private `tensorflow.python.keras` and `keras.wrappers.scikit_learn`: 22 probes. The table says ok, or the
error's type. Run by each interpreter in a fresh process, twice: plain, and after `compat.install` (what the
harness does before the script runs). Measured results are in the README ("Runtimes").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r'''
import importlib, json, os, sys, tempfile
import numpy as np
if os.environ.get("PROBE_COMPAT"):
    import keras
    from mlops_cli.harness import compat
    compat.install(keras)
results = {}
tmp = tempfile.mkdtemp()
x = np.random.rand(64, 8, 8, 1).astype("float32")
y = np.random.randint(0, 3, 64)


def probe(name, func):
    try:
        func()
        results[name] = "ok"
    except Exception as exc:
        results[name] = type(exc).__name__


def model_of(k):
    return k.models.Sequential([k.layers.Flatten(input_shape=(8, 8, 1)), k.layers.Dense(4, activation="relu"),
                                k.layers.Dense(3, activation="softmax")])


def compiled(k, **kwargs):
    m = model_of(k)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", **kwargs)
    return m


def lr_kept(k):
    opt = k.optimizers.Adam(lr=0.01)
    assert abs(float(np.asarray(opt.learning_rate)) - 0.01) < 1e-6, "lr ignored"


def acc_key(k):
    h = compiled(k, metrics=["acc"]).fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    assert "acc" in h.history and "val_acc" in h.history


def generator(k, root):
    gen = importlib.import_module(f"{root}.preprocessing.image").ImageDataGenerator(rotation_range=10)
    m = model_of(k)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    m.fit_generator(gen.flow(x, k.utils.to_categorical(y, 3), batch_size=16), steps_per_epoch=4, epochs=1, verbose=0)


def saved(k, name):
    m = compiled(k)
    (m.save_weights if name.endswith(".h5") and name.startswith("w") else m.save)(os.path.join(tmp, name))


for root in ("keras", "tensorflow.keras"):
    if root == "keras":
        import keras as k
    else:
        import tensorflow as tf
        k = tf.keras
    probe(f"{root}: utils.np_utils", lambda: importlib.import_module(f"{root}.utils.np_utils").to_categorical(y, 3))
    probe(f"{root}: Adam(lr=)", lambda: lr_kept(k))
    probe(f"{root}: RMSprop(decay=)", lambda: k.optimizers.RMSprop(learning_rate=0.01, decay=1e-6))
    probe(f"{root}: metrics=['acc']", lambda: acc_key(k))
    probe(f"{root}: ImageDataGenerator + fit_generator", lambda: generator(k, root))
    probe(f"{root}: save_weights('w.h5')", lambda: saved(k, "w.h5"))
    probe(f"{root}: save('m.pk1')", lambda: saved(k, "m.pk1"))
    probe(f"{root}: save('m.h5')", lambda: saved(k, "m.h5"))
    probe(f"{root}: layers.core", lambda: importlib.import_module(f"{root}.layers.core").Dense)
    probe(f"{root}: BackupAndRestore", lambda: compiled(k).fit(
        x, y, epochs=2, verbose=0, callbacks=[k.callbacks.BackupAndRestore(os.path.join(tmp, "bk"))]))
probe("tensorflow.python.keras", lambda: importlib.import_module("tensorflow.python.keras.layers").Dense)
probe("keras.wrappers.scikit_learn", lambda: importlib.import_module("keras.wrappers.scikit_learn"))
import keras
print(json.dumps({"keras": keras.__version__, "results": results}))
'''


def has_tf_keras(python: str) -> bool:
    found = subprocess.run([python, "-c", "import importlib.util, sys; sys.exit(not importlib.util.find_spec("
                                          "'tf_keras'))"], timeout=60)
    return found.returncode == 0


def measure(python: str, compat: bool) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    env.pop("TF_USE_LEGACY_KERAS", None)
    if has_tf_keras(python):
        env["TF_USE_LEGACY_KERAS"] = "1"
    if compat:
        env["PROBE_COMPAT"] = "1"
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{python}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(pythons: list[str]) -> None:
    columns = []
    for python in pythons:
        for compat in (False, True):
            found = measure(python, compat)
            legacy = " tf-keras" if has_tf_keras(python) else ""
            columns.append((f"keras {found['keras']}{legacy}{' +compat' if compat else ''}", found["results"]))
    names = list(columns[0][1])
    width = max(map(len, names))
    print(f"{'idiom':<{width}}  " + "  ".join(f"{title:>28}" for title, _ in columns))
    for name in names:
        print(f"{name:<{width}}  " + "  ".join(f"{results.get(name, '-'):>28}" for _, results in columns))
    print(f"{'runs':<{width}}  " + "  ".join(
        f"{sum(v == 'ok' for v in results.values()):>25}/{len(results)}" for _, results in columns))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
