"""A Python client of ``xlt serve`` (standard library only, so that any program can call a server)::

from xlt.serve.client import Client

client = Client("http://127.0.0.1:8000")
client.predict(["grinning face"], task="emoji", configuration="SLP+TA", language="sk")
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ServeClientError(RuntimeError):
    """An error answer of the server: its HTTP status and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Client:
    """Calls a server at ``url``; ``token``: its bearer token, if it has one."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise ServeClientError(exc.code, str(message)) from None
        return json.loads(raw) if "json" in kind else raw.decode()

    def predict(
        self,
        inputs: list[str | dict[str, Any]],
        *,
        language: str | None = None,
        task: str | None = None,
        configuration: str | None = None,
        plan: str | list[str] | None = None,
        source: str | None = None,
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """One output per input: a text, or a dict with ``text`` and its own routing (``language``, ...);
        the keyword arguments apply to inputs that do not set their own."""
        routing = {"language": language, "task": task, "configuration": configuration, "plan": plan}
        routing |= {"source": source, "seed": seed}
        body = {k: v for k, v in routing.items() if v is not None}
        body["inputs"] = [{"text": i} if isinstance(i, str) else dict(i) for i in inputs]
        return list(self._call("POST", "/v1/predict", body)["outputs"])

    def representations(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/representations"))

    def load(self, names: list[str] | None = None, paths: list[str] | None = None) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/representations/load", {"names": names or [], "paths": paths or []}))

    def unload(self, names: list[str]) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/representations/unload", {"names": names}))

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def metrics(self) -> str:
        return str(self._call("GET", "/metrics"))
