"""``xlt serve``: one frozen base model, a bank of language and task representations loaded on demand, any
combination per input, concurrent requests batched across plans.

The HTTP layer needs the ``serve`` extra (``pip install xlt[serve]``: FastAPI, uvicorn, prometheus-client); the
client (``xlt.serve.client``) and the settings need nothing beyond xlt."""

from __future__ import annotations

from xlt.serve.client import Client, ServeClientError
from xlt.serve.settings import ServeConfig, serve_config

__all__ = ["Client", "ServeClientError", "ServeConfig", "serve_config"]
