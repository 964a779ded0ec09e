# A model repository's requirements on top of a runtime image (built by the docker runner, tagged by their hash).
# The context holds this file and requirements.txt only: no secret, no other file of the repository. pip trusts the
# CA bundle the runtime image was built with (PIP_CERT). Requirements the runtime installs already are kept as they
# are (python -m mlops_cli.runtimes.deps drops them, and says so), and every package of the image is a pip constraint
# (its pins, written by the same command), so a new package cannot replace one the runtime needs.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER root
COPY requirements.txt /tmp/deps/requirements.txt
RUN set -eu; python -m mlops_cli.runtimes.deps /tmp/deps/requirements.txt /tmp/deps/constraints.txt \
        > /tmp/deps/install.txt; \
    if [ -s /tmp/deps/install.txt ]; then \
        pip install --no-input -r /tmp/deps/install.txt -c /tmp/deps/constraints.txt; fi; \
    rm -rf /tmp/deps
USER mlops
