#!/bin/sh
# The steps every Dockerfile.<runtime> at the root of mlops shares, one command per image layer (cache order: the
# runtime's packages change least, mlops' own sources most). The Dockerfile copies this script, the runtime's
# requirement file (mlops_cli/runtimes/requirements/NAME.txt) and the optional extra-ca.crt into /etc/mlops/.
#   image-setup.sh runtime NAME   trust store (+ extra-ca.crt), the venv /opt/venv, NAME.txt, the user `mlops`
#   image-setup.sh dependencies NAME   mlops' own dependencies (/src/pyproject.toml) within NAME.txt's pins
#   image-setup.sh mlops          mlops_cli itself from /src, without dependencies (they are installed above)
set -eu
step=$1
case "$step" in
runtime)
    cat /etc/ssl/certs/ca-certificates.crt > /etc/mlops/ca-bundle.crt 2>/dev/null || true
    if [ -s /etc/mlops/extra-ca.crt ]; then cat /etc/mlops/extra-ca.crt >> /etc/mlops/ca-bundle.crt; fi
    rm -f /etc/mlops/extra-ca.crt
    # LightGBM's wheel needs the system's OpenMP runtime (the registry-free base image includes it)
    if ! ldconfig -p | grep -q libgomp.so.1; then
        (apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*) \
            || echo "image-setup.sh: libgomp1 could not be installed: LightGBM will not import" >&2
    fi
    python3 -m venv /opt/venv
    pip install "setuptools>=68" wheel
    pip install -r "/etc/mlops/$2.txt"
    # a non-root user; /workspace owned by it, so a fresh named volume mounted there is writable
    useradd --uid 10001 --user-group --home-dir /home/mlops --create-home --shell /bin/sh mlops
    chmod 1777 /home/mlops
    mkdir -p /workspace
    chown mlops:mlops /workspace
    ;;
dependencies)
    python3 -c 'import sys, tomllib; print(*tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"], sep="\n")' \
        /src/pyproject.toml > /tmp/mlops-dependencies.txt
    pip install -r /tmp/mlops-dependencies.txt -c "/etc/mlops/$2.txt"
    rm -rf /tmp/mlops-dependencies.txt /src
    ;;
mlops)
    pip install --no-deps --no-build-isolation /src
    rm -rf /src
    ;;
*)
    echo "image-setup.sh: unknown step $step (runtime NAME | dependencies NAME | mlops)" >&2
    exit 2
    ;;
esac
