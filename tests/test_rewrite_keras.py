"""libcst rewrites on a corpus of real Keras script styles: the result is valid Python with only the intended
lines changed (formatting and comments kept), it trains, and a change that cannot be made says why."""
from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS

from mlops_cli.errors import RewriteError
from mlops_cli.steps.tweak import keras_rewrite as rw

WINE_DATA = "from sklearn.datasets import load_wine\nX, y = load_wine(return_X_y=True)\nX = X / X.max(axis=0)\n"

CORPUS = {
    # the seeds' style: from keras.layers import Dense, model.add(...), RMSprop(learning_rate=...)
    "seed_add": (MODELS / "wine-seed" / "train.py").read_text().replace("epochs=100", "epochs=2"),
    # tf.keras by attribute, a string optimizer, epochs positional in fit
    "tf_attribute": (
        "import tensorflow as tf\n" + WINE_DATA +
        "\n"
        "model = tf.keras.models.Sequential()\n"
        "model.add(tf.keras.layers.Dense(16, activation='relu', input_shape=(13,)))  # hidden\n"
        "model.add(tf.keras.layers.Dense(3, activation='softmax'))  # output\n"
        "model.compile('adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
        "model.fit(X, y, 32, 2, verbose=0)\n"),
    # from tensorflow.keras import layers, a Sequential([...]) list, RMSprop(0.01) positional
    "layers_list": (
        "from tensorflow import keras\n"
        "from tensorflow.keras import layers\n" + WINE_DATA +
        "\n"
        "model = keras.Sequential([\n"
        "    keras.Input(shape=(13,)),\n"
        "    layers.Dense(64, activation=\"relu\"),  # wide enough\n"
        "    layers.Dense(3, activation=\"softmax\"),\n"
        "])\n"
        "model.compile(optimizer=keras.optimizers.RMSprop(0.01),\n"
        "              loss=\"sparse_categorical_crossentropy\",\n"
        "              metrics=[\"accuracy\"])\n"
        "model.fit(\n"
        "    X,\n"
        "    y,\n"
        "    batch_size=16,\n"
        "    epochs=2,\n"
        "    verbose=0,\n"
        ")\n"),
    # the functional API, an old `lr=` keyword, epochs from a module-level constant
    "functional": (
        "import keras\n"
        "from keras import layers\n" + WINE_DATA +
        "\n"
        "EPOCHS = 2  # keep it short\n"
        "inputs = keras.Input(shape=(13,))\n"
        "x = layers.Dense(32, activation='relu')(inputs)\n"
        "outputs = layers.Dense(3, activation='softmax')(x)\n"
        "model = keras.Model(inputs, outputs)\n"
        "model.compile(optimizer=keras.optimizers.SGD(lr=0.05), loss='sparse_categorical_crossentropy',\n"
        "              metrics=['accuracy'])\n"
        "model.fit(X, y, epochs=EPOCHS, verbose=0)\n"),
    # a Sequential list with a convolution (the digits CNN), "adam" by name
    "cnn_list": (MODELS / "digits-cnn" / "train.py").read_text().replace('if __name__ == "__main__":\n    ', "")
    .replace("epochs=10", "epochs=1"),
}


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [l[2:] for l in diff if l.startswith("- ")], [l[2:] for l in diff if l.startswith("+ ")]


@pytest.mark.parametrize("style", sorted(CORPUS))
def test_epochs_change_only_the_fit_call(style: str) -> None:
    before = CORPUS[style]
    after = rw.set_epochs(before, 7)
    compile(after, style, "exec")
    removed, added = changed_lines(before, after)
    assert len(removed) == len(added) == 1, (removed, added)
    assert "7" in added[0] and ("epochs" in added[0] or "EPOCHS" in added[0] or ", 7," in added[0])
    assert rw.inspect_script(after).epochs == 7 or "EPOCHS = 7" in after


@pytest.mark.parametrize("style", sorted(CORPUS))
def test_learning_rate(style: str) -> None:
    before = CORPUS[style]
    after = rw.set_learning_rate(before, 0.003)
    compile(after, style, "exec")
    assert "learning_rate=0.003" in after or "RMSprop(0.003)" in after
    assert "lr=" not in after, "Keras 3 only knows learning_rate="
    removed, added = changed_lines(before, after)
    assert len(removed) == len(added) == 1
    assert rw.inspect_script(after).optimizers[0].value == pytest.approx(0.003)


def test_string_optimizer_becomes_a_constructor_in_the_scripts_namespace() -> None:
    assert "model.compile(tf.keras.optimizers.Adam(learning_rate=0.01), loss=" in \
        rw.set_learning_rate(CORPUS["tf_attribute"], 0.01)
    assert "optimizer=keras.optimizers.Adam(learning_rate=0.01)" in rw.set_learning_rate(CORPUS["cnn_list"], 0.01)
    bare = "from keras.models import Sequential\nmodel = Sequential()\nmodel.compile(optimizer='sgd', loss='mse')\n"
    after = rw.set_learning_rate(bare, 0.1)
    assert after.splitlines()[:2] == ["from keras.models import Sequential", "import keras"]
    assert "optimizer=keras.optimizers.SGD(learning_rate=0.1)" in after


@pytest.mark.parametrize("style", sorted(CORPUS))
def test_units_of_the_first_dense(style: str) -> None:
    before = CORPUS[style]
    after = rw.set_units(before, {0: 48})
    compile(after, style, "exec")
    removed, added = changed_lines(before, after)
    assert len(removed) == len(added) == 1 and "48" in added[0] and "Dense" in added[0]
    assert rw.inspect_script(after).dense[0].value == 48
    assert [s.value for s in rw.inspect_script(after).dense[1:]] == [s.value for s in rw.inspect_script(before).dense[1:]]


def test_filters_of_a_convolution() -> None:
    after = rw.set_filters(CORPUS["cnn_list"], {0: 32})
    assert 'keras.layers.Conv2D(32, 3, activation="relu", padding="same"),' in after


@pytest.mark.parametrize("style", sorted(CORPUS))
def test_hidden_layer_before_the_output(style: str) -> None:
    before = CORPUS[style]
    after = rw.add_hidden_dense(before, 24)
    compile(after, style, "exec")
    removed, added = changed_lines(before, after)
    assert removed == [] and len(added) == 1, (removed, added)
    lines = after.splitlines()
    new = lines.index(added[0])
    output = next(i for i, line in enumerate(lines) if "Dense" in line and ("softmax" in line or "(3" in line)
                  and i > new)
    assert output == new + 1, "the new layer sits just before the output layer"
    assert "24, activation=" in added[0]
    assert len(rw.inspect_script(after).dense) == len(rw.inspect_script(before).dense) + 1


def test_comments_and_layout_are_kept() -> None:
    after = rw.add_hidden_dense(rw.set_units(CORPUS["layers_list"], {0: 128}), 32)
    assert "    layers.Dense(128, activation=\"relu\"),  # wide enough\n    layers.Dense(32, activation=\"relu\"),\n" \
           "    layers.Dense(3, activation=\"softmax\"),\n])" in after
    assert "model.compile(optimizer=keras.optimizers.RMSprop(0.01),\n              loss=" in after


def test_epochs_added_to_a_multiline_fit_that_relied_on_the_default() -> None:
    script = "model.fit(\n    X,\n    y,\n    batch_size=16,\n)\n"
    assert rw.set_epochs(script, 40) == "model.fit(\n    X,\n    y,\n    batch_size=16,\n    epochs=40,\n)\n"


@pytest.mark.parametrize(("script", "change", "why"), [
    ("model.fit(X, y, epochs=cfg['epochs'])\n", lambda s: rw.set_epochs(s, 5),
     "train.py:1: epochs is `cfg['epochs']`, computed at run time, so a rewrite cannot change it"),
    ("model = build()\nmodel.compile(optimizer=make_opt(), loss='mse')\n", lambda s: rw.set_learning_rate(s, 0.1),
     "train.py:2: the optimizer is `make_opt()`, built elsewhere, so a rewrite cannot set its learning rate"),
    ("model = build()\n", lambda s: rw.add_hidden_dense(s, 8),
     "train.py has no Dense(...) layer, so there is no output layer to add one before"),
    ("out = Dense(3)(Dense(8)(inp) + skip)\n", lambda s: rw.add_hidden_dense(s, 8),
     "the output layer is applied to `Dense(8)(inp) + skip` inside another expression"),
    ("model.compile(optimizer='adamx')\n", lambda s: rw.set_learning_rate(s, 0.1), "unknown optimizer name 'adamx'"),
    ("def broken(:\n", lambda s: rw.set_epochs(s, 5), "train.py is not valid Python"),
    ("model.add(Dense(units=n_units))\nmodel.add(Dense(3))\n", lambda s: rw.set_units(s, {0: 8}),
     "train.py:1: the units of Dense is `n_units`, computed at run time"),
])
def test_what_cannot_be_rewritten_says_why(script: str, change, why: str) -> None:
    with pytest.raises(RewriteError) as caught:
        change(script)
    assert why in str(caught.value)


@pytest.mark.slow
def test_rewritten_scripts_still_train(tmp_path: Path) -> None:
    """Every style, with a hidden layer added, a new learning rate and 2 epochs, trains for real (one process)."""
    expected = {}
    for style, text in CORPUS.items():
        after = rw.set_epochs(rw.set_learning_rate(rw.add_hidden_dense(text, 8), 0.005), 2)
        (tmp_path / f"{style}.py").write_text(after)
        expected[style] = len(rw.inspect_script(text).dense) + 1
    (tmp_path / "wines.csv").write_text((MODELS / "wine-seed" / "wines.csv").read_text())
    runner = (
        "import json, runpy, sys\n"
        "out = {}\n"
        "for style in sys.argv[1:]:\n"
        "    g = runpy.run_path(style + '.py')\n"
        "    m = g['model']\n"
        "    out[style] = {'dense': sum(type(l).__name__ == 'Dense' for l in m.layers),\n"
        "                  'lr': float(m.optimizer.learning_rate.numpy()),\n"
        "                  'epochs_seen': int(m.optimizer.iterations.numpy())}\n"
        "print('RESULT ' + json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", runner, *CORPUS], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    for style in CORPUS:
        assert result[style]["dense"] == expected[style], style
        assert result[style]["lr"] == pytest.approx(0.005), style
        assert result[style]["epochs_seen"] > 0, style
