"""Starts the peer servers on 127.0.0.1, each in its own directory with its own port, and
stops them by PID. Every started PID is also written to $COMPARE_PIDS (one a line) so
that bench/compare.sh's trap can stop them if this process dies."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remember(pid):
    path = os.environ.get("COMPARE_PIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{pid}\n")


def _wait_port(port, proc, name, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode} while starting (see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not accept connections on 127.0.0.1:{port} within {timeout} s")


class Server:
    name = "server"

    def __init__(self, base):
        self.dir = os.path.join(base, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = open(os.path.join(base, f"{self.name}.log"), "w")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _start(self, argv, **kw):
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, **kw)
        _remember(self.proc.pid)
        _wait_port(self.port, self.proc, self.name)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class Postgres(Server):
    """PostgreSQL 15 as user postgres (it refuses to run as root). Settings: the docs'
    advice for bulk loading that keeps crash safety (large shared_buffers, max_wal_size so
    no checkpoint interrupts the load, wal_level=minimal since nothing replicates), fsync
    and full_page_writes on, synchronous_commit on (set per session for the async group)."""
    name = "postgresql"
    settings = {
        "listen_addresses": "127.0.0.1", "shared_buffers": "1GB", "wal_buffers": "64MB",
        "max_wal_size": "8GB", "checkpoint_timeout": "30min", "wal_level": "minimal", "max_wal_senders": "0",
        "fsync": "on", "full_page_writes": "on", "synchronous_commit": "on", "wal_sync_method": "fdatasync",
        "work_mem": "256MB", "maintenance_work_mem": "512MB", "max_connections": "100",
    }

    def start(self):
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--locale=C"], check=True, stdout=self.log, stderr=subprocess.STDOUT)
        argv = [f"{PG_BIN}/postgres", "-D", data, "-p", str(self.port), "-k", self.dir]
        for k, v in self.settings.items():
            argv += ["-c", f"{k}={v}"]
        self._start(argv, user="postgres", group="postgres")

    def stop(self):
        super().stop(signal.SIGINT)  # "fast" shutdown


class Redis(Server):
    """Redis 7 with the append-only file, appendfsync always (reply only after fsync).
    No RDB snapshots (the AOF is the persistence under test)."""
    name = "redis"

    def start(self):
        self._start(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                     "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                     "--protected-mode", "yes", "--maxmemory", "0"])


class Nats(Server):
    """nats-server 2.9 with JetStream, file storage in its own directory."""
    name = "nats"

    def start(self):
        self._start(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.dir])


def which_missing():
    missing = []
    for tool, package in (("sqlite3", "sqlite3"), (f"{PG_BIN}/postgres", "postgresql"),
                          ("redis-server", "redis-server"), ("nats-server", "nats-server")):
        if not (shutil.which(tool) or os.path.exists(tool)):
            missing.append(package)
    return missing
