"""Secure, unstarvable serving (issue 11), driving the real binary: --web.config.file with TLS
(certificates made here with the openssl CLI), mutual TLS, basic auth, reload without restart,
strict parsing, slow and idle clients, pipelining, --web.max-requests, several listen addresses,
systemd socket activation, --web.disable-exporter-metrics, and a real Prometheus scraping over
https with basic_auth and tls_config."""
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
import warnings

import harness

SAMPLE = harness.TESTDATA / "sample" / "cp.log"
NO_SLOTS_TEXT = b"Limit of concurrent requests reached (1), try again later.\n"


def openssl(*args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")


def make_pki(directory: pathlib.Path):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (SAN
    DNS:prometheus.example), all signed by the CA; EC keys keep it fast."""
    d = directory
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=nle-test-ca", cwd=d)
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:prometheus.example"),
                      ("server2", "IP:127.0.0.1")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    # A client certificate from another CA, which RequireAndVerifyClientCert must refuse.
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue",
            "-addext", "subjectAltName=DNS:prometheus.example", cwd=d)


def bcrypt_hash(password: str, cost: int = 5) -> str:
    """What the README says to run: htpasswd -nBC <cost> "" | tr -d ':\\n' (password given with -b)."""
    result = subprocess.run(["htpasswd", "-nbBC", str(cost), "", password], capture_output=True, timeout=30, check=True)
    return result.stdout.decode().strip().lstrip(":")


def stop_process(proc):
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def basic_header(user, password):
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class WebTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pathlib.Path(tempfile.mkdtemp(prefix="nle-web-pki-"))
        make_pki(cls.pki)
        cls.alice_hash = bcrypt_hash("alice-pw")
        cls.bob_hash = bcrypt_hash("bob-pw")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-web-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    # --- helpers -------------------------------------------------------------------------------

    def web_config(self, text: str) -> pathlib.Path:
        """Writes a web config next to copies of the certificates, so relative paths work."""
        for name in ("ca.crt", "server.crt", "server.key", "server2.crt", "server2.key"):
            target = self.tmp / name
            if not target.exists():
                shutil.copy(self.pki / name, target)
        path = self.tmp / "web-config.yml"
        # Written to a temporary name and renamed, as an operator's tooling would; the exporter must
        # see either the old or the new file.
        staging = self.tmp / "web-config.yml.new"
        staging.write_text(text)
        os.replace(staging, path)
        return path

    def start(self, *args, addresses=None, wait_ready=True):
        """`follow` on the sample log with `args`; returns (process, port). Stopped at cleanup."""
        port = harness.free_port()
        addresses = addresses or [f"127.0.0.1:{port}"]
        stderr_path = self.tmp / f"follow-{port}.stderr"
        command = [harness.BINARY, "follow", *[a for address in addresses for a in ("--web.listen-address", address)],
                   *map(str, args), str(SAMPLE)]
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        self.stderr_path = stderr_path

        self.addCleanup(stop_process, proc)
        if wait_ready:
            def listening():
                if proc.poll() is not None:
                    raise AssertionError(f"follow exited with {proc.returncode}:\n{self.stderr()}")
                return "serving metrics" in self.stderr()
            harness.wait_for(listening, timeout=15, message="follow to listen")
        return proc, port

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tls_context(self, client_cert=None, maximum=None, minimum=None):
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client_cert:
            context.load_cert_chain(str(self.pki / f"{client_cert}.crt"), str(self.pki / f"{client_cert}.key"))
        if maximum or minimum:
            # Let this client's own OpenSSL offer old versions; the server must be the one refusing.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = minimum or ssl.TLSVersion.MINIMUM_SUPPORTED
                context.maximum_version = maximum or ssl.TLSVersion.MAXIMUM_SUPPORTED
        return context

    def https_get(self, port, path="/metrics", headers=None, context=None, timeout=10):
        """(status, headers, body) over TLS; HTTP errors are answers."""
        request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context or self.tls_context()) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def handshake_refused(self, port, context):
        """True when the server ends the TLS handshake (or the first request) with an error."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    # TLS 1.3 client certificates are checked after the client's Finished: the
                    # refusal arrives on the first read.
                    tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return tls.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return True

    # --- TLS and basic auth ---------------------------------------------------------------------

    def test_tls_with_basic_auth_accepts_the_right_password_and_refuses_the_rest(self):
        config = self.web_config(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
            f"basic_auth_users:\n  alice: {self.alice_hash}\n")
        _, port = self.start("--web.config.file", config)
        self.assertIn(f"url=https://127.0.0.1:{port}/metrics", self.stderr())

        status, headers, body = self.https_get(port, headers={"Authorization": basic_header("alice", "alice-pw")})
        self.assertEqual(status, 200)
        self.assertIn(b"nixfleet_gate_block_total", body)
        self.assertEqual(headers["X-Frame-Options"], "deny")
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")

        for auth in (None, basic_header("alice", "wrong"), basic_header("mallory", "alice-pw"), "Bearer x"):
            with self.subTest(auth=auth):
                status, headers, body = self.https_get(port, headers={"Authorization": auth} if auth else {})
                self.assertEqual(status, 401)
                self.assertEqual(headers["WWW-Authenticate"], "Basic")
                self.assertEqual(body, b"Unauthorized\n")
        # Plain HTTP on a TLS port gets no metrics.
        with self.assertRaises(Exception):
            harness.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)

    def test_mutual_tls_requires_a_client_certificate_from_the_ca(self):
        config = self.web_config(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            "  client_allowed_sans: [prometheus.example]\n")
        _, port = self.start("--web.config.file", config)
        status, _, body = self.https_get(port, context=self.tls_context(client_cert="client"))
        self.assertEqual(status, 200)
        self.assertIn(b"nixfleet_gate_block_total", body)
        self.assertTrue(self.handshake_refused(port, self.tls_context()), "no client certificate was accepted")
        self.assertTrue(self.handshake_refused(port, self.tls_context(client_cert="rogue")),
                        "a certificate from another CA was accepted")
        # The server still answers after refusing.
        self.assertEqual(self.https_get(port, context=self.tls_context(client_cert="client"))[0], 200)

    def test_client_allowed_sans_refuses_a_certificate_without_a_listed_san(self):
        config = self.web_config(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            "  client_allowed_sans: [someone-else.example]\n")
        _, port = self.start("--web.config.file", config)
        self.assertTrue(self.handshake_refused(port, self.tls_context(client_cert="client")))

    def test_a_tls_1_1_client_is_refused_under_the_default_min_version(self):
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        _, port = self.start("--web.config.file", config)
        self.assertTrue(self.handshake_refused(port, self.tls_context(maximum=ssl.TLSVersion.TLSv1_1)))
        self.assertEqual(self.https_get(port, context=self.tls_context(minimum=ssl.TLSVersion.TLSv1_2,
                                                                       maximum=ssl.TLSVersion.TLSv1_2))[0], 200)
        self.assertEqual(self.https_get(port, context=self.tls_context(minimum=ssl.TLSVersion.TLSv1_3))[0], 200)

    def test_min_version_tls10_lets_a_tls_1_1_client_in(self):
        # The counterpart of the refusal above: the server, not the client, decides.
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                 "  min_version: TLS10\n")
        _, port = self.start("--web.config.file", config)
        self.assertEqual(self.https_get(port, context=self.tls_context(maximum=ssl.TLSVersion.TLSv1_1))[0], 200)

    def test_min_version_tls13_refuses_tls_1_2(self):
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                 "  min_version: TLS13\n")
        _, port = self.start("--web.config.file", config)
        self.assertTrue(self.handshake_refused(port, self.tls_context(maximum=ssl.TLSVersion.TLSv1_2)))
        self.assertEqual(self.https_get(port)[0], 200)

    def test_cipher_suites_by_go_names_limit_what_tls_1_2_negotiates(self):
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                 "  max_version: TLS12\n"
                                 "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
                                 "  curve_preferences: [CurveP384]\n")
        _, port = self.start("--web.config.file", config)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with self.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                self.assertEqual(tls.cipher()[0], "ECDHE-ECDSA-AES256-GCM-SHA384")
                self.assertEqual(tls.version(), "TLSv1.2")

    # --- reload and strictness ------------------------------------------------------------------

    def test_changed_users_and_rotated_certificates_apply_without_a_restart(self):
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                 f"basic_auth_users:\n  alice: {self.alice_hash}\n")
        proc, port = self.start("--web.config.file", config)
        alice = {"Authorization": basic_header("alice", "alice-pw")}
        bob = {"Authorization": basic_header("bob", "bob-pw")}
        self.assertEqual(self.https_get(port, headers=alice)[0], 200)
        self.assertEqual(self.https_get(port, headers=bob)[0], 401)

        self.web_config("tls_server_config:\n  cert_file: server2.crt\n  key_file: server2.key\n"
                        f"basic_auth_users:\n  bob: {self.bob_hash}\n")
        self.assertEqual(self.https_get(port, headers=bob)[0], 200)
        self.assertEqual(self.https_get(port, headers=alice)[0], 401)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with self.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                self.assertEqual(subject["commonName"], "server2")
        self.assertIsNone(proc.poll())

    def test_a_config_that_breaks_while_running_answers_500_and_is_logged(self):
        config = self.web_config(f"basic_auth_users:\n  alice: {self.alice_hash}\n")
        proc, port = self.start("--web.config.file", config)
        alice = {"Authorization": basic_header("alice", "alice-pw")}
        self.assertEqual(harness.http_get(f"http://127.0.0.1:{port}/metrics", headers=alice)[0], 200)
        self.web_config(f"basic_auth_users:\n  alice: {self.alice_hash}\nrate_limits: {{}}\n")
        status, _, body = harness.http_get(f"http://127.0.0.1:{port}/metrics", headers=alice)
        self.assertEqual(status, 500)
        self.assertEqual(body, b"Internal Server Error\n")
        harness.wait_for(lambda: "rate_limits: unknown key" in self.stderr(), message="the error logged")
        self.assertIsNone(proc.poll())
        self.web_config(f"basic_auth_users:\n  alice: {self.alice_hash}\n")
        self.assertEqual(harness.http_get(f"http://127.0.0.1:{port}/metrics", headers=alice)[0], 200)

    def test_an_invalid_config_at_start_up_exits_2_naming_the_key(self):
        cases = {
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n":
                "tls_server_config.client_auth_type",
            "basic_auth_users:\n  alice: not-a-hash\n": "basic_auth_users.alice",
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n": "missing.crt",
            "http_server_config:\n  headers:\n    Server: x\n": "http_server_config.headers.Server",
            "rate_limit:\n  interval: soon\n": "rate_limit.interval",
        }
        for text, key in cases.items():
            with self.subTest(key=key):
                config = self.web_config(text)
                result = harness.run("follow", "--web.listen-address", f"127.0.0.1:{harness.free_port()}",
                                     "--web.config.file", config, SAMPLE, timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(key, result.stderr.decode())

    def test_rate_limit_answers_429_beyond_the_burst(self):
        config = self.web_config("rate_limit:\n  interval: 1h\n  burst: 2\n")
        _, port = self.start("--web.config.file", config)
        url = f"http://127.0.0.1:{port}/-/healthy"
        self.assertEqual([harness.http_get(url)[0] for _ in range(3)], [200, 200, 429])

    # --- slow, idle and pipelining clients ------------------------------------------------------

    def test_trickling_and_idle_clients_do_not_delay_scrapes_and_trickling_ones_are_cut_off(self):
        _, port = self.start()
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(500):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        tricklers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(64)]
        held.extend(tricklers)
        stop = threading.Event()

        def trickle():
            request = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Padding: " + b"a" * 100
            for byte in request:
                if stop.wait(0.2):
                    return
                for s in tricklers:
                    try:
                        s.send(bytes([byte]))
                    except OSError:
                        pass
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        self.addCleanup(stop.set)
        started = time.monotonic()
        # Scrapes while the slow clients hold their connections: each answered within a second.
        for _ in range(10):
            begin = time.monotonic()
            status, _, body = harness.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            self.assertEqual(status, 200)
            self.assertIn(b"nixfleet_gate_block_total", body)
            self.assertLess(time.monotonic() - begin, 1.0)
        self.assertLess(time.monotonic() - started, 10, "the tricklers' header deadline passed during the scrapes")

        # The header deadline (10 s from accept) closes the trickling connections.
        def closed(s):
            try:
                s.setblocking(False)
                return s.recv(1) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True
        harness.wait_for(lambda: all(closed(s) for s in tricklers), timeout=30, interval=0.5,
                         message="trickling connections closed by the header deadline")

    def test_stalled_tls_handshakes_do_not_delay_https_scrapes(self):
        config = self.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        _, port = self.start("--web.config.file", config)
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        # 64 clients that start a handshake (the first bytes of a ClientHello) and stall, and 200
        # that connect and send nothing.
        for _ in range(64):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x16\x03\x01\x02\x00\x01")
            held.append(s)
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(10):
            begin = time.monotonic()
            status, _, body = self.https_get(port, timeout=5)  # a new connection and handshake each
            self.assertEqual(status, 200)
            self.assertIn(b"nixfleet_gate_block_total", body)
            self.assertLess(time.monotonic() - begin, 1.0)

    def test_pipelined_requests_are_answered_in_order(self):
        _, port = self.start()
        # "serving metrics" is logged before the sample log is read; /-/ready answers 503 until
        # then, which a slow (sanitizer) build can still be doing when the requests arrive.
        harness.wait_for(lambda: harness.http_get(f"http://127.0.0.1:{port}/-/ready", timeout=1)[0] == 200,
                         timeout=15, message="/-/ready")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # "OK" bodies end without a newline
        self.assertEqual(statuses, [b"200", b"404", b"200"])

    def test_max_requests_answers_503_with_node_exporters_text_when_full(self):
        _, port = self.start("--web.max-requests", "1")
        url = f"http://127.0.0.1:{port}/metrics"
        seen = set()
        bodies = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                status, _, body = harness.http_get(url, timeout=10)
                seen.add(status)
                if status == 503:
                    bodies.append(body)
        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(12)]
        for t in threads:
            t.start()
        try:
            harness.wait_for(lambda: {200, 503} <= seen, timeout=60, message="both 200 and 503")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(bodies[0], NO_SLOTS_TEXT)
        self.assertLessEqual(seen, {200, 503})
        # Probes are not limited, as in node_exporter (only the metrics handler is).
        self.assertEqual(harness.http_get(f"http://127.0.0.1:{port}/-/healthy")[0], 200)

    # --- listeners ------------------------------------------------------------------------------

    def test_every_listen_address_is_served(self):
        ports = [harness.free_port(), harness.free_port()]
        self.start(addresses=[f"127.0.0.1:{p}" for p in ports])
        # start() waits for the first "serving metrics" line only; the next is logged just after.
        for p in ports:
            harness.wait_for(lambda p=p: f"url=http://127.0.0.1:{p}/metrics" in self.stderr(), timeout=15,
                             message=f"the serving metrics line for port {p}")
        for p in ports:
            self.assertIn(f"url=http://127.0.0.1:{p}/metrics", self.stderr())
            self.assertEqual(harness.http_get(f"http://127.0.0.1:{p}/metrics")[0], 200)

    def test_systemd_socket_activation_serves_the_passed_socket(self):
        activate = shutil.which("systemd-socket-activate")
        self.assertIsNotNone(activate, "systemd-socket-activate is missing: install Debian's systemd")
        port = harness.free_port()
        stderr_path = self.tmp / "activate.stderr"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen([activate, "-l", f"127.0.0.1:{port}", harness.BINARY, "follow",
                                     "--web.systemd-socket", "--web.listen-address", "127.0.0.1:1", str(SAMPLE)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)

        self.addCleanup(stop_process, proc)
        # systemd-socket-activate listens first and starts the exporter on the first connection.
        status = harness.wait_for(lambda: harness.http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)[0],
                                  timeout=20, message="a scrape through the activated socket")
        self.assertEqual(status, 200)
        # The exporter's own logfmt lines, not systemd-socket-activate's "Execing ... --web.systemd-socket"
        # line (which also says "systemd"): it says it serves the passed sockets, and the URL it serves
        # is the activated port, not the ignored --web.listen-address. Polled: the exporter logs these
        # just after its server starts, so a scrape can be answered before they reach stderr.
        expected = [
            re.compile(r'^ts=\S+ level=info msg="serving on the sockets systemd passed, not on listen addresses"$',
                       re.MULTILINE),
            re.compile(rf'^ts=\S+ level=info msg="serving metrics" url=http://127\.0\.0\.1:{port}/metrics version=\S+$',
                       re.MULTILINE),
        ]
        try:
            harness.wait_for(lambda: all(p.search(stderr_path.read_text(errors="replace")) for p in expected),
                             timeout=10, message="the exporter's lines about serving the passed socket")
        except AssertionError as error:
            raise AssertionError(f"{error}\nstderr:\n{stderr_path.read_text(errors='replace')}") from None
        self.assertNotIn("127.0.0.1:1/metrics", stderr_path.read_text(errors="replace"))

    def test_systemd_socket_without_sockets_exits_2_with_the_toolkits_message(self):
        env = {k: v for k, v in os.environ.items() if k not in ("LISTEN_FDS", "LISTEN_PID")}
        result = subprocess.run([harness.BINARY, "follow", "--web.systemd-socket", str(SAMPLE)],
                                capture_output=True, timeout=30, env=env)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(b"no socket activation file descriptors found", result.stderr)

    def test_disable_exporter_metrics_leaves_only_the_control_planes_families(self):
        _, port = self.start("--web.disable-exporter-metrics")
        status, _, body = harness.http_get(f"http://127.0.0.1:{port}/metrics")
        self.assertEqual(status, 200)
        names = {line.split(" ")[2] for line in body.decode().splitlines() if line.startswith("# TYPE ")}
        self.assertIn("nixfleet_gate_block_total", names)
        self.assertFalse([n for n in names if n.startswith(("process_", "nixfleet_log_exporter_"))], names)

    # --- a real Prometheus ----------------------------------------------------------------------

    @harness.slow
    def test_prometheus_scrapes_over_https_with_basic_auth_and_a_client_certificate(self):
        self.assertTrue(os.access(harness.PROMETHEUS, os.X_OK), "install Debian's prometheus")
        config = self.web_config(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            f"basic_auth_users:\n  prometheus: {self.alice_hash}\n")
        _, port = self.start("--web.config.file", config)
        password_file = self.tmp / "password"
        password_file.write_text("alice-pw")
        base = harness.start_prometheus(
            self, self.tmp,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: nle\n    scheme: https\n"
            f"    basic_auth:\n      username: prometheus\n      password_file: {password_file}\n"
            f"    tls_config:\n      ca_file: {self.pki / 'ca.crt'}\n      cert_file: {self.pki / 'client.crt'}\n"
            f"      key_file: {self.pki / 'client.key'}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            f"--storage.tsdb.path={self.tmp / 'tsdb'}")

        def up():
            result = harness.prometheus_query(base, 'up{job="nle"}')
            return result and result[0][1] == 1
        harness.wait_for(up, timeout=30, interval=0.2, message='up{job="nle"} == 1')
        harness.wait_for(lambda: harness.prometheus_query(base, 'nixfleet_gate_block_total{gate="quarantine"}') or
                         harness.prometheus_query(base, "count(nixfleet_gate_block_total)"),
                         timeout=30, interval=0.2, message="the exporter's series in Prometheus")


if __name__ == "__main__":
    unittest.main()
