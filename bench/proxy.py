"""XFChat behind nginx, configured as docs/nginx.conf says: a scenario, not a benchmark.

    uv run python -m bench.proxy

Installs Debian's nginx if it is missing (root on a Debian machine), starts a durable
local PostgreSQL and one `xfchat serve` (XFCHAT_TRUSTED_PROXIES=127.0.0.1), and nginx
with docs/nginx.conf as it is but for three things: its listener's port (a free one on
loopback), the upstream's port, and the certificate (a throwaway self-signed one, made
with openssl). Then, through nginx, over HTTPS: a registration whose
forged X-Forwarded-For is not believed, an SSE stream that gets a message as it is sent,
a gateway connection that identifies, an attachment of XFCHAT_ATTACHMENT_MAX_BYTES that
is stored and one byte more answered 413 in XFChat's JSON. Prints each and exits 1 if
one fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import websockets

from bench.procs import free_port, local_servers

CONFIG = Path(__file__).resolve().parent.parent / "docs" / "nginx.conf"
MAX_FILE = 8 * 1024 * 1024  # XFCHAT_ATTACHMENT_MAX_BYTES's default


def ensure_nginx() -> str | None:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "nginx-light"]
    for cmd in (install, ["apt-get", "update", "-q"], install):
        subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=300)
        if Path("/usr/sbin/nginx").exists():
            return "/usr/sbin/nginx"
    return None


def nginx_conf(root: Path, listen: int, upstream: int) -> Path:
    """docs/nginx.conf in a whole configuration of its own, with a self-signed
    certificate for 127.0.0.1."""
    cert, key = root / "cert.pem", root / "key.pem"
    make = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [*make, *subject, "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True
    )
    site = CONFIG.read_text()
    for old, new in (
        ("127.0.0.1:3000", f"127.0.0.1:{upstream}"),
        ("listen 443 ", f"listen 127.0.0.1:{listen} "),
        ("/etc/ssl/chat.example.com.pem", str(cert)),
        ("/etc/ssl/chat.example.com.key", str(key)),
        ("/var/log/nginx/xfchat.access.log", str(root / "xfchat.access.log")),
    ):
        assert old in site, old  # (the documented file changed: change this too)
        site = site.replace(old, new)
    temp = " ".join(
        f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    path = root / "nginx.conf"
    path.write_text(
        f"daemon off; pid {root}/nginx.pid; error_log {root}/error.log; worker_processes 1;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ access_log {root}/access.log; {temp}\n{site}\n}}\n"
    )
    return path


async def checks(base: str, trust: ssl.SSLContext) -> list[tuple[str, bool, str]]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30, verify=trust) as c:
        made = await c.post(
            "/api/auth/register",
            json={"username": "ann", "email": "a@x.org", "password": "a long pass phrase"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        token = made.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        ips = [s["ip"] for s in (await c.get("/api/users/@me/sessions", headers=auth)).json()]
        out.append(("a forged X-Forwarded-For is overwritten", ips == ["127.0.0.1"], str(ips)))
        server = (await c.post("/api/servers", json={"name": "s"}, headers=auth)).json()
        full = (await c.get(f"/api/servers/{server['id']}", headers=auth)).json()
        channel = next(ch["id"] for ch in full["channels"] if ch["kind"] == "text")
        arrived: list[float] = []

        async def listen() -> None:
            async with c.stream("GET", f"/api/events?access_token={token}") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: message.created"):
                        arrived.append(time.monotonic())
                        return

        task = asyncio.create_task(listen())
        await asyncio.sleep(1)
        sent = time.monotonic()
        await c.post(f"/api/channels/{channel}/messages", json={"content": "hi"}, headers=auth)
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            pass
        took = f"{(arrived[0] - sent) * 1000:.1f} ms" if arrived else "never"
        out.append(("SSE delivers as it is sent (no buffering)", bool(arrived), took))
        gateway = base.replace("https", "wss") + "/api/gateway"
        async with websockets.connect(gateway, ssl=trust) as ws:
            await ws.recv()
            await ws.send(orjson.dumps({"op": 2, "d": {"token": token}}).decode())
            ready = orjson.loads(await ws.recv())
        out.append(("the gateway upgrades and identifies", ready.get("t") == "ready", ""))
        for size, status in ((MAX_FILE, 201), (MAX_FILE + 1, 413)):
            sent_file = await c.post(
                f"/api/channels/{channel}/messages",
                data={"content": "file"},
                files=[("files", ("a.bin", os.urandom(size), "application/octet-stream"))],
                headers=auth,
            )
            ok = sent_file.status_code == status and (
                status == 201 or sent_file.json().get("code") == "FILE_TOO_LARGE"
            )
            out.append((f"an attachment of {size} bytes is {status}", ok, ""))
    return out


def start_nginx(nginx: str, conf: Path) -> subprocess.Popen[bytes] | None:
    """nginx on `conf`, once `nginx -t` has taken it (None if not)."""
    test = subprocess.run([nginx, "-t", "-c", str(conf)], capture_output=True, text=True)
    print(test.stderr.strip())
    return subprocess.Popen([nginx, "-c", str(conf)]) if test.returncode == 0 else None


async def main() -> int:
    nginx = ensure_nginx()
    if nginx is None:
        print("nginx is not installed and cannot be (apt-get install nginx-light)")
        return 1
    async with local_servers(1, prefix="xfproxy-", XFCHAT_TRUSTED_PROXIES="127.0.0.1") as (
        servers,
        _pg,
    ):
        root = Path(tempfile.mkdtemp(prefix="xfproxy-nginx-"))
        listen = free_port()
        proc = start_nginx(nginx, nginx_conf(root, listen, servers[0].port))
        if proc is None:
            return 1
        try:
            await asyncio.sleep(0.5)
            trust = ssl.create_default_context(cafile=str(root / "cert.pem"))  # (its own)
            results = await checks(f"https://127.0.0.1:{listen}", trust)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(root, ignore_errors=True)
    for what, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}{f' ({detail})' if detail else ''}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
