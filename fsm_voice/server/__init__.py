"""The server: the Starlette app, the `/voice` endpoint and its upgrade checks, uvicorn.

`fsm_voice.server` is the public face (`create_app`, `serve_in_background`, …); the
parts live in `app` (the app and uvicorn), `endpoint` (one `CallRuntime` per accepted
socket), `upgrade` (the checks before accept) and `uvicorn_protocol`.
"""

from fsm_voice.server.app import (
    GC_YOUNG_THRESHOLD,
    MAX_MESSAGE_BYTES,
    RunningServer,
    create_app,
    inherited_socket,
    run_server,
    serve_in_background,
    tune_gc,
    uvicorn_config,
)

__all__ = [
    "GC_YOUNG_THRESHOLD",
    "MAX_MESSAGE_BYTES",
    "RunningServer",
    "create_app",
    "inherited_socket",
    "run_server",
    "serve_in_background",
    "tune_gc",
    "uvicorn_config",
]
