"""Where the zoo finds a preset's weights: preset folder, package, cache, download (keras_pose.zoo.weights_file).

The downloads come from an ``http.server`` on 127.0.0.1 (port 0) in a thread
of the test; the cache is a temporary ``$KERAS_HOME``.
"""

import http.server
import json
import re
import shutil
import socket
import threading

import numpy as np
import pytest

from keras_pose import zoo
from keras_pose.files import sha256
from keras_pose.models.registry import build_model

X = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path] = (body, mode)``; mode "ok", or "short": the announced Content-Length, then
    half the body and a closed connection. Every request is counted in ``server.requests``."""

    def do_GET(self):  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        if self.path not in self.server.files:
            self.send_error(404)
            return
        body, mode = self.server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def tiny():
    return build_model("cpm_tiny")


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty zoo folder, package folder and cache: (zoo, package, cache root of the zoo)."""
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "zoo"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(zoo, "PACKAGE_ZOO", tmp_path / "package")
    return tmp_path / "zoo", tmp_path / "package", tmp_path / "keras_home" / "keras_pose" / "zoo"


def _hosted(model, zoo_folder, server, name="cpm_hosted", mode="ok"):
    """A preset whose weights are only on the test server: (preset, the weights' bytes)."""
    folder = zoo_folder / name
    url = f"{server.url}/{name}/model.weights.h5"
    zoo.save_preset(model, folder, name, "tiny CPM with hosted weights", architecture="cpm_tiny", url=url)
    data = (folder / "model.weights.h5").read_bytes()
    (folder / "model.weights.h5").unlink()
    server.files[f"/{name}/model.weights.h5"] = (data, mode)
    return zoo.get_preset(name), data


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_lands_in_the_cache_and_the_next_load_makes_no_request(tiny, places, server):
    zoo_folder, _, cache = places
    preset, data = _hosted(tiny, zoo_folder, server)
    assert json.loads((preset.folder / "preset.json").read_text())["url"] == preset.url
    loaded = zoo.load("cpm_hosted")
    np.testing.assert_allclose(loaded(X)["keypoints"], tiny(X)["keypoints"], atol=1e-5)
    assert (cache / "cpm_hosted" / "model.weights.h5").read_bytes() == data
    assert _files(cache) == ["model.weights.h5"]  # no temporary file left beside it
    assert server.requests == ["/cpm_hosted/model.weights.h5"]
    np.testing.assert_allclose(zoo.load("cpm_hosted")(X)["keypoints"], tiny(X)["keypoints"], atol=1e-5)
    assert len(server.requests) == 1  # the second load used the cache


def test_truncated_download_is_an_error_and_leaves_no_file(tiny, places, server):
    zoo_folder, _, cache = places
    _hosted(tiny, zoo_folder, server, mode="short")
    with pytest.raises(FileNotFoundError, match=r"cut short: \d+ of \d+ bytes received") as e:
        zoo.load("cpm_hosted")
    assert str(cache / "cpm_hosted" / "model.weights.h5") in str(e.value)  # where to put the file by hand
    assert _files(cache) == [] and len(server.requests) == 1


def test_wrong_checksum_is_an_error_and_leaves_no_file(tiny, places, server):
    zoo_folder, _, cache = places
    _, data = _hosted(tiny, zoo_folder, server)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    server.files["/cpm_hosted/model.weights.h5"] = (bytes(flipped), "ok")  # complete, but not the same bytes
    with pytest.raises(ValueError, match="zoo model 'cpm_hosted': weights file model.weights.h5: download of "
                                         ".* has SHA-256 .* expected .* not kept"):
        zoo.load("cpm_hosted")
    assert _files(cache) == []


def test_offline_or_no_url_is_one_error_listing_every_place(tiny, places, server):
    zoo_folder, package, cache = places
    _hosted(tiny, zoo_folder, server)
    with socket.socket() as s:  # a port that nothing listens on: the download cannot connect
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    meta = json.loads((zoo_folder / "cpm_hosted" / "preset.json").read_text())
    meta["url"] = f"http://127.0.0.1:{closed}/model.weights.h5"
    (zoo_folder / "cpm_hosted" / "preset.json").write_text(json.dumps(meta))
    expected = [zoo_folder / "cpm_hosted" / "model.weights.h5", package / "cpm_hosted" / "model.weights.h5",
                cache / "cpm_hosted" / "model.weights.h5"]
    with pytest.raises(FileNotFoundError, match="download of http://127.0.0.1.* failed") as e:
        zoo.load("cpm_hosted")
    assert all(str(p) in str(e.value) for p in expected), str(e.value)
    del meta["url"]
    (zoo_folder / "cpm_hosted" / "preset.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="weights file model.weights.h5 is missing .*has no url") as e:
        zoo.load("cpm_hosted")
    assert all(str(p) in str(e.value) for p in expected), str(e.value)
    assert f"${zoo.ENV_VAR}" in str(e.value) and "put the file at" in str(e.value)
    assert _files(cache) == [] and server.requests == []


def test_corrupt_cached_file_is_an_error_naming_it(tiny, places, server):
    zoo_folder, _, cache = places
    _, data = _hosted(tiny, zoo_folder, server)
    cached = cache / "cpm_hosted" / "model.weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[:-100])  # e.g. copied by hand from an interrupted transfer
    with pytest.raises(ValueError, match=f"weights file {re.escape(str(cached))} is corrupt .*delete "
                                         f"{re.escape(str(cached))} so that it is downloaded again"):
        zoo.load("cpm_hosted")
    assert server.requests == [] and cached.read_bytes() == data[:-100]  # never replaced behind the user's back
    cached.unlink()
    zoo.load("cpm_hosted")
    assert cached.read_bytes() == data and len(server.requests) == 1


def test_bundled_file_is_used_before_the_cache_and_a_corrupt_one_is_an_error(tiny, places, server):
    zoo_folder, package, cache = places
    _, data = _hosted(tiny, zoo_folder, server)
    bundled = package / "cpm_hosted" / "model.weights.h5"
    bundled.parent.mkdir(parents=True)
    shutil.copyfile(zoo_folder / "cpm_hosted" / "preset.json", bundled.parent / "preset.json")
    bundled.write_bytes(data)
    (cache / "cpm_hosted").mkdir(parents=True)
    (cache / "cpm_hosted" / "model.weights.h5").write_bytes(b"not used: the package's file comes first")
    assert zoo.weights_file(zoo.get_preset("cpm_hosted")) == bundled
    np.testing.assert_allclose(zoo.load("cpm_hosted")(X)["keypoints"], tiny(X)["keypoints"], atol=1e-5)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    bundled.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=f"weights file {re.escape(str(bundled))} is corrupt or was changed "
                                         ".*reinstall keras_pose"):
        zoo.load("cpm_hosted")
    # without $KERAS_POSE_ZOO the package folder is the zoo: the same error, by name
    with pytest.MonkeyPatch.context() as m:
        m.delenv(zoo.ENV_VAR)
        assert zoo.zoo_dir() == package and [r["name"] for r in zoo.list()] == ["cpm_hosted"]
        with pytest.raises(ValueError, match=f"weights file {re.escape(str(bundled))} is corrupt"):
            zoo.load("cpm_hosted")
    assert server.requests == []


def test_cascade_stage_weights_are_downloaded_too(places, server, tmp_path):
    from keras_pose.zoo.cascades import load_cascade, save_cascade_preset

    zoo_folder, _, cache = places
    runs = []
    for s in range(2):
        run = tmp_path / f"s{s}"
        run.mkdir()
        m = build_model("deeppose_tiny")
        (run / "model.json").write_text(json.dumps(m.pose_config.to_dict()))
        m.save_weights(run / "best.weights.h5")
        runs.append(run)
    folder = save_cascade_preset(runs, zoo_folder / "dp_hosted", "dp_hosted", "two-stage cascade, stage 2 hosted")
    expected = load_cascade("dp_hosted")(X)["keypoints"].numpy()
    meta = json.loads((folder / "preset.json").read_text())
    meta["cascade"]["stages"][1]["url"] = f"{server.url}/dp_hosted/stage2.weights.h5"
    (folder / "preset.json").write_text(json.dumps(meta))
    data = (folder / "stage2.weights.h5").read_bytes()
    (folder / "stage2.weights.h5").unlink()
    server.files["/dp_hosted/stage2.weights.h5"] = (data, "short")
    with pytest.raises(FileNotFoundError, match="cascade 'dp_hosted': stage 2 weights file stage2.weights.h5 is "
                                                "missing .*cut short"):
        load_cascade("dp_hosted")
    assert _files(cache) == []
    server.files["/dp_hosted/stage2.weights.h5"] = (data, "ok")
    np.testing.assert_allclose(load_cascade("dp_hosted")(X)["keypoints"], expected, atol=1e-5)
    assert sha256(cache / "dp_hosted" / "stage2.weights.h5") == meta["cascade"]["stages"][1]["sha256"]
    assert len(server.requests) == 2
