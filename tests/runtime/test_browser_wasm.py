"""LiteRT.js in headless Chromium: the model from ``build`` trains, saves twice, restores into a fresh compiled model
and infers like the Interpreter, in a real web page (Debian's chromium + chromium-driver, through Selenium).

A local http.server serves ``litertjs_page.html``, the cached ``@litertjs/core`` and ``@litertjs/wasm-utils`` (from
``litetrain runtimes install wasm``) and the model; nothing leaves the machine. ES modules and the wasm file do not
load from ``file://``, hence the server; it sends the COOP/COEP headers, so LiteRT.js's threaded build can run too.
Without chromium, Selenium or the wasm runtime the test is skipped, naming what is missing; it fails instead where
``CI`` or ``LITETRAIN_REQUIRE_BROWSER`` is set (``dev/test.sh`` installs them there).
"""

from __future__ import annotations

import base64
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from litetrain.config import Optimizer, OptimizerConfig
from litetrain.runtime.install import wasm_package
from tests.browser import headless_chromium, unavailable

BATCH = 8
STEPS = 6
PAGE = Path(__file__).with_name("litertjs_page.html")


NEEDS = "chromium, chromium-driver, npm and the wasm runtime"


def _unavailable(reason: str) -> None:
    unavailable(reason, NEEDS)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The page at /, the model at /model.tflite (the server's ``model_bytes``), the cache's node_modules under
    /node_modules/."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] in ("/", "/index.html"):
            return self._send(PAGE.read_bytes(), "text/html; charset=utf-8")
        if self.path == "/model.tflite":
            return self._send(self.server.model_bytes, "application/octet-stream")
        return super().do_GET()

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        # Cross-origin isolation: SharedArrayBuffer, so the threaded wasm build can start its workers.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    if not (wasm_package() / "package.json").is_file():
        _unavailable(f"the wasm runtime is not installed (no {wasm_package()}; run 'litetrain runtimes install wasm')")
    root = wasm_package().parent.parent.parent  # .../wasm: the page asks for /node_modules/@litertjs/...
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.model_bytes = b""  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-litertjs"), needs=NEEDS)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The test page in Chromium: compiled models by handle, signatures called with numpy arrays."""

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        driver.get(url)
        self._run("const check = () => window.litetrain ? done(true) : setTimeout(check, 20); check();")

    def _run(self, body: str, *args: Any) -> Any:
        reply = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const fail = (e) => done({error: String(e && e.stack || e)});"
            f"try {{ {body} }} catch (e) {{ fail(e); }}", *args)
        if isinstance(reply, dict) and "error" in reply:
            pytest.fail(f"LiteRT.js in Chromium: {reply['error']}")
        return reply

    def load(self) -> dict[str, Any]:
        return self._run("window.litetrain.load('/model.tflite').then(done, fail);")

    def call(self, handle: int, key: str, arrays: dict[str, np.ndarray] | None = None,
             repeat: int = 1) -> dict[str, np.ndarray]:
        wire = {name: {"data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode(), "dtype": a.dtype.name,
                       "shape": list(a.shape) or [1]} for name, a in (arrays or {}).items()}
        reply = self._run("window.litetrain.call(arguments[0], arguments[1], arguments[2], arguments[3])"
                          ".then(done, fail);", handle, key, wire, repeat)
        self.seconds = reply["seconds"]
        return {name: np.frombuffer(base64.b64decode(o["data"]), np.dtype(o["dtype"])).reshape(o["shape"])
                for name, o in reply["outputs"].items()}

    def console_errors(self) -> list[str]:
        """The console's errors, less LiteRT's own INFO/WARNING log lines (its stderr lands in console.error)."""
        return [e["message"] for e in self.driver.get_log("browser")
                if e["level"] == "SEVERE" and not re.search(r'"(INFO|WARNING): ', e["message"])]


@pytest.fixture(scope="module")
def model_and_data() -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    import keras

    from litetrain.trainable.builder import build
    from tests.models import mlp

    keras.utils.set_random_seed(0)
    # Adam and sparse labels, as in test_wasm.py: an int32 step counter and int32 targets cross into wasm and back.
    tflite = build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH,
                   optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01)).tflite
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((STEPS, BATCH, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 10, (STEPS, BATCH)).astype(np.int32)
    x_test = rng.standard_normal((BATCH, 8, 8)).astype(np.float32)
    return tflite, xs, ys, x_test


@pytest.mark.parametrize("threads", [False, True], ids=["one-thread", "threaded"])
def test_litertjs_in_chromium_trains_saves_restores_and_infers_like_the_interpreter(
        server, chromium, model_and_data, threads):
    from litetrain.runtime.litert import LiteRTRunner

    tflite, xs, ys, x_test = model_and_data
    server.model_bytes = tflite
    page = Page(chromium, f"http://127.0.0.1:{server.server_address[1]}/?threads={int(threads)}")
    trained = page.load()
    assert trained["crossOriginIsolated"] is True
    signatures = trained["signatures"]
    assert set(signatures) >= {"train", "infer", "infer_fixed", "save", "restore"}
    assert signatures["train"]["inputs"]["y"]["dtype"] == "int32"
    tensors = [(key, side, name, d) for key, s in signatures.items() for side in ("inputs", "outputs")
               for name, d in s[side].items()]
    assert [t for t in tensors if t[3]["dtype"] == "int64"] == []  # LiteRT.js refuses a model with one
    assert {t[2] for t in tensors if not t[3]["shape"]} == {"loss"}  # no 0-d tensor but the loss a train returns
    with LiteRTRunner(tflite) as interp:
        losses_i = [interp.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        # A model built with the count of real rows (issue 12) takes n too: every row is real here.
        count = {"n": np.array([BATCH], np.int32)} if "n" in signatures["train"]["inputs"] else {}
        losses_b = [page.call(trained["handle"], "train", {"x": x, "y": y, **count})["loss"].item()
                    for x, y in zip(xs, ys, strict=True)]
        np.testing.assert_allclose(losses_b, losses_i, rtol=1e-6)  # XNNPACK in wasm SIMD: a few ulps at most
        saved, again = page.call(trained["handle"], "save"), page.call(trained["handle"], "save")
        assert saved["opt_iteration"].tolist() == [STEPS] and saved["opt_iteration"].dtype == np.int32
        for name, value in interp.get_weights().items():  # save twice: LiteRT.js once returned garbage the 2nd time
            np.testing.assert_array_equal(saved[name], again[name], err_msg=name)
            np.testing.assert_allclose(saved[name], value, rtol=0, atol=1e-6, err_msg=name)
        fresh = page.load()
        page.call(fresh["handle"], "restore", saved)
        for name, value in page.call(fresh["handle"], "save").items():
            np.testing.assert_array_equal(value, saved[name], err_msg=name)
        out_fresh = page.call(fresh["handle"], "infer_fixed", {"x": x_test})["output"]
        out_trained = page.call(trained["handle"], "infer_fixed", {"x": x_test})["output"]
        np.testing.assert_array_equal(out_fresh, out_trained)
        np.testing.assert_allclose(out_fresh, interp.infer(x_test)["output"], rtol=0, atol=1e-5)
    assert page.console_errors() == []


def test_a_missing_browser_or_runtime_fails_where_it_is_required(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("LITETRAIN_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="must run here"):
        _unavailable("the wasm runtime is not installed")
    monkeypatch.delenv("LITETRAIN_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="the wasm runtime is not installed"):
        _unavailable("the wasm runtime is not installed")
