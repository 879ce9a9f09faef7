"""The HTTP layer of ``xlt serve`` (FastAPI): endpoints, bearer-token check, request body limit, metrics per
request, and every error as a JSON body ``{"error": "..."}`` with its status: nothing a client sends reaches the
server as an exception it does not answer."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.serve.catalog import ServeError, clip
from xlt.serve.schemas import PredictRequest, PredictResponse, RepsRequest, RepsResponse
from xlt.serve.server import Server
from xlt.serve.settings import ServeConfig
from xlt.version import __version__

OPEN = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})  # no token needed


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse a request body over ``limit`` bytes (413) before it is parsed, whether or not it says its length:
    the body is read up to the limit here, then handed on whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error(413, f"the request body is over {self.limit} bytes; send fewer or shorter inputs")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(config: ServeConfig, model: XLTModel | None = None, log: Any = print) -> FastAPI:
    """The server's application; the model and the offered directories load now (errors before listening)."""
    server = Server(config, model, log)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="xlt serve",
        version=__version__,
        summary="One frozen base model, a bank of language and task representations, any combination per input.",
        lifespan=lifespan,
    )
    app.state.server = server
    # A character may take 12 bytes of JSON (an escaped surrogate pair), in the text, the pair and the words.
    body_limit = config.max_inputs * (3 * 12 * config.max_input_chars + 2048) + 65536
    app.add_middleware(BodyLimit, limit=body_limit)

    def authorised(request: Request) -> bool:
        if config.token is None or request.url.path in OPEN:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), config.token.encode())

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The token is checked before the body is read; every answer is counted, a 500 included."""
        start = time.perf_counter()
        status = 500
        try:
            if not authorised(request):
                response: Response = error(
                    401,
                    "missing or wrong bearer token; send the header 'Authorization: Bearer TOKEN'",
                    {"WWW-Authenticate": "Bearer"},
                )
            else:
                response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            endpoint = getattr(route, "path", None) or "unrouted"  # never the client's path: labels stay few
            server.metrics.requests.labels(endpoint, str(status)).inc()
            server.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(XLTError)
    async def xlt_error(_: Request, exc: XLTError) -> JSONResponse:
        return error(422, clip(exc, 600))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "the request body is not valid JSON; send a JSON object (Content-Type: application/json)")
        parts = []
        for p in problems[:3]:
            where = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {clip(p.get('msg', 'invalid'), 120)}")
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return error(422, "; ".join(parts) + more)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, f"no endpoint {clip(request.url.path)}; see /docs for the API")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {clip(request.url.path)}; see /docs")
        return error(exc.status_code, clip(exc.detail, 300))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}: {clip(exc, 300)}); the server serves on")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the model, resident representations, inputs waiting (no token needed)."""
        return {
            "status": "ok",
            "model": server.model_name,
            "resident": len(server.bank.resident),
            "queued": len(server.batcher.pending) if server.batcher else 0,
            "uptime_s": round(time.time() - server.started, 3),
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics: requests, latency, queue time, batch sizes, resident representations."""
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/predict", response_model=PredictResponse, response_model_exclude_none=True)
    async def predict(request: PredictRequest) -> dict[str, Any]:
        """Predict each input under its own plan: a named configuration's for its task and target language, or
        an explicit plan. Concurrent requests share batches."""
        return {"model": server.model_name, "outputs": await server.predict(request)}

    @app.get("/v1/representations")
    async def representations() -> dict[str, Any]:
        """The offered representations, the resident ones, the servable configurations and the limits."""
        return server.representations()

    @app.post("/v1/representations/load", response_model=RepsResponse)
    async def load(request: RepsRequest) -> dict[str, Any]:
        """Load offered representations by name, or rep directories inside the offered directories by path."""
        if not request.names and not request.paths:
            raise ServeError(422, "give names (offered rep names) or paths (rep directories) to load")
        loaded = await server.load(request.names, request.paths)
        return {"loaded": loaded, "resident": server.bank.describe()}

    @app.post("/v1/representations/unload", response_model=RepsResponse)
    async def unload(request: RepsRequest) -> dict[str, Any]:
        """Take representations out of the bank (409 while a request uses one)."""
        if request.paths or not request.names:
            raise ServeError(422, "give names (resident rep names) to unload")
        return {"unloaded": await server.unload(request.names), "resident": server.bank.describe()}

    return app


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread (port 0: any free port); yields its base URL, stops on exit."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="xlt-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise XLTError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(config: ServeConfig, log: Any = print) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    app = create_app(config, log=log)
    log(
        f"xlt serve: {len(app.state.server.catalog.offers)} representations offered; http://{config.host}:{config.port}"
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
