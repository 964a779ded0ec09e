"""Hugging Face's hub when the run cannot reach it.

huggingface_hub retries an unreachable hub (five tries with back-off, for every file a `from_pretrained` looks
for): a run without a network (the Docker runner's default, an agent behind a firewall) spent minutes there before
failing. Where huggingface_hub is installed and the script's environment leaves its mode unset, one connection to the
hub (`HF_ENDPOINT`, else huggingface.co) is tried when the run starts, within PROBE_TIMEOUT_S; when it fails, the
client's own offline mode is set (`HF_HUB_OFFLINE`, and `TRANSFORMERS_OFFLINE` for older transformers): a download
then fails at once, naming the file, and what is already cached is still used. Through a proxy the probe cannot
tell, so it is not made.
"""
from __future__ import annotations

# imported here, not lazily in the probe's thread: that thread encodes the host name while the importing thread
# holds the import lock, so a lazy import there would wait out the probe's time-out
import encodings.idna  # noqa: F401
import importlib.abc
import importlib.util
import os
import socket
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 3.0
HUB = "https://huggingface.co"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class _ProbeOnImport(importlib.abc.MetaPathFinder):
    """Probes the hub when huggingface_hub is first imported, before its constants read the mode; then steps
    aside (the import itself is the usual finders')."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "huggingface_hub":
            sys.meta_path.remove(self)
            hub_offline_when_unreachable()
        return None


def install() -> None:
    """Probe the hub when the training first imports huggingface_hub. Quietly: Keras and Lightning import the client
    in every run, and a download that then fails is named in the run's one line (harness/failures.yaml)."""
    if "huggingface_hub" not in sys.modules:
        sys.meta_path.insert(0, _ProbeOnImport())


def hub_offline_when_unreachable() -> bool:
    """Set the hub client's offline mode when the hub cannot be reached; whether it was set."""
    if any(name in os.environ for name in (*OFFLINE_VARIABLES, *PROXY_VARIABLES)) \
            or importlib.util.find_spec("huggingface_hub") is None:
        return False
    url = urlsplit(os.environ.get("HF_ENDPOINT") or HUB)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    if _reachable(host, port):
        return False
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    return True


def _reachable(host: str, port: int) -> bool:
    """Whether a TCP connection opens within PROBE_TIMEOUT_S (the name lookup included, which has no timeout of its
    own: it runs in a thread that is left behind if it hangs)."""
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            opened.append(True)
        except (OSError, UnicodeError):
            opened.append(False)

    probe = threading.Thread(target=connect, daemon=True, name="mlops-hub-probe")
    probe.start()
    probe.join(PROBE_TIMEOUT_S)
    return bool(opened and opened[0])
