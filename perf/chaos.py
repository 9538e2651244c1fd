#!/usr/bin/env python3
"""The fault matrix (issue 11), driven by perf/chaos.sh; Python 3.11 stdlib only.

Starts real processes (two `bidder serve`, one to three `exchange serve`
replicas, tansu, `exchange ledger`) against a scratch database on the local
PostgreSQL, runs open-loop HTTP/1.1 keep-alive load through them, injects one
fault per row, waits until the ledger has caught up, and prints one table:

  fault | sent | answered | within tmax | Σ prices answered | Σ debits |
  lost | doubled | overspend | notes

Money is checked per answered win, by (publisher request id, imp id): every
request id is unique (`<run>-<row>-<seq>`) and the ledger's `debits` table
keeps it (`request_id`). lost = answered wins with no debit; doubled = debits
beyond one per (request id, imp id); overspend = spend of the budgeted bidder
`beta` past the total budget the row gave it (every row sets one that runs
out mid-row). Exit status 1 when any row has lost, doubled, overspend or a
debit whose amount differs from the price answered; 0 otherwise.

Configuration comes from the environment (perf/chaos.sh documents it).
"""

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

# ---------------------------------------------------------------- settings


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def env_float(name, default):
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


SHORT = os.environ.get("CHAOS_SHORT", "") not in ("", "0")
BIN = os.environ.get("BIN", "target/release")
OUT = os.environ["CHAOS_OUT"]
TANSU = os.environ["TANSU"]
TANSU_STORAGE = os.environ.get("TANSU_STORAGE", "")  # "": sqlite in OUT if tansu has it, else memory
PG_HOST = os.environ.get("PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PG_PORT", "5432")
PG_USER = os.environ["PG_USER"]
PG_CLUSTER = os.environ.get("PG_CLUSTER", "")
RATE = env_float("CHAOS_RATE", 100.0 if SHORT else 150.0)
TMAX = env_int("CHAOS_TMAX", 200)
CONNS = env_int("CHAOS_CONNECTIONS", 32)
TIMEOUT_S = env_float("CHAOS_TIMEOUT_S", 2.0)
LEASE_TTL_MS = env_int("CHAOS_LEASE_TTL_MS", 4000 if SHORT else 15000)
SPOOL_FS_KB = env_int("CHAOS_SPOOL_FS_KB", 512)
SPOOL_FS = os.environ.get("CHAOS_SPOOL_FS", "auto")  # auto | tmpfs | rlimit
# How the broker is "stopped" (CHAOS_KAFKA_STOP): restart (SIGTERM, then a
# new process on the same storage) needs a persistent TANSU_STORAGE; with
# tansu's memory storage a restart loses the log, so the default there is
# cut: the clients reach tansu through perf/chaos_proxy.py, which resets
# every connection and refuses new ones for the outage. freeze: tansu
# SIGSTOPped, then SIGCONTed.
STORAGE = PERSISTENT = KAFKA_STOP = None  # set by main()


def choose_storage():
    global STORAGE, PERSISTENT, KAFKA_STOP
    STORAGE = TANSU_STORAGE or "memory://tansu/"
    PERSISTENT = not STORAGE.startswith("memory:")
    KAFKA_STOP = os.environ.get("CHAOS_KAFKA_STOP", "") or ("restart" if PERSISTENT else "cut")
# ledger.assignment of the rig's ledger: "all" (every partition, no consumer
# group) by default, because tansu's group coordinator stops handing out
# partitions after a freeze (see perf/RESULTS.md); "group" to measure that.
LEDGER_ASSIGNMENT = os.environ.get("CHAOS_LEDGER_ASSIGNMENT", "all")
DEADLINE_SLACK_PP = env_float("CHAOS_DEADLINE_SLACK", 1.0)
ONLY = [f for f in os.environ.get("CHAOS_FAULTS", "").split(",") if f]
TOKEN = "chaos-admin-token"
RUN = time.strftime("c%H%M%S", time.gmtime())
DB = "chaos_%s_%d" % (time.strftime("%Y%m%d%H%M%S", time.gmtime()), os.getpid())
DB_URL = "postgres://%s@%s:%s/%s" % (PG_USER, PG_HOST, PG_PORT, DB)
TOPIC = "auction-results"
DLQ = "auction-results-dlq"
PARTITIONS = 4
# Sizes of the rows, in seconds: (full, short).
D = (lambda full, short: short if SHORT else full)

STOPPED_PIDS_FILE = os.path.join(OUT, "stopped-pids")


def log(msg):
    line = "[%s] %s" % (time.strftime("%H:%M:%S"), msg)
    print(line, file=sys.stderr, flush=True)
    with open(os.path.join(OUT, "chaos.log"), "a") as f:
        f.write(line + "\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def now_ms():
    return int(time.time() * 1000)


# ------------------------------------------------------------- processes


class Proc:
    """A child process with its log; every one is killed at exit."""

    all = []

    def __init__(self, name, argv, env=None, fsize_limit=None, cwd=None):
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.env = env
        self.fsize_limit = fsize_limit
        self.p = None
        self.starts = 0
        Proc.all.append(self)

    def log_path(self):
        return os.path.join(OUT, "%s.log" % self.name)

    def start(self):
        self.starts += 1
        logf = open(self.log_path(), "ab")
        logf.write(("\n=== start %d at %s: %s\n" % (self.starts, time.strftime("%H:%M:%S"), " ".join(self.argv))).encode())
        logf.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.update(self.env or {})
        if self.fsize_limit is None:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=self.cwd)
            logf.close()
        else:
            # The rlimit equivalent of a full disk: files this process
            # writes cannot grow past the limit (EFBIG; SIGXFSZ ignored).
            # Its output goes through a pipe, which the limit does not touch.
            lim = self.fsize_limit

            def pre():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))

            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, preexec_fn=pre)

            def pump(src, dst):
                for chunk in iter(lambda: src.read1(65536), b""):
                    dst.write(chunk)
                    dst.flush()
                dst.close()

            threading.Thread(target=pump, args=(self.p.stdout, logf), daemon=True).start()
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if not self.alive():
            return
        self.p.terminate()
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s did not stop in %ss: SIGKILL" % (self.name, timeout))
            self.kill()

    @classmethod
    def kill_all(cls):
        for p in cls.all:
            try:
                p.signal(signal.SIGCONT)
                p.kill()
            except Exception:
                pass


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return None, b""


def wait_until(pred, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ------------------------------------------------------------- PostgreSQL


def psql(sql, db="test", timeout=30, check=True):
    r = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", db, "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=timeout,
    )
    if check and r.returncode != 0:
        raise RuntimeError("psql failed (%s): %s" % (sql[:80], r.stderr.strip()))
    return r.stdout


def pg_ready():
    return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", PG_PORT, "-q"]).returncode == 0


def pg_ctl(action):
    ver = PG_CLUSTER or sorted(os.listdir("/etc/postgresql"))[0]
    args = ["pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", action]
    if action == "stop":
        args += ["-m", "fast"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    log("pg_ctlcluster %s main %s: rc %d %s" % (ver, action, r.returncode, (r.stderr or r.stdout).strip()))


def scalar(sql):
    out = psql(sql, DB).strip()
    return int(out) if out else 0


def record_stopped(pids):
    with open(STOPPED_PIDS_FILE, "w") as f:
        f.write("".join("%d\n" % p for p in pids))


class PgStall:
    """Stalls the scratch database: a session holds ACCESS EXCLUSIVE locks
    on every ledger and budget table (new statements wait), then every other
    backend connected to the database is SIGSTOPped (statements already
    running freeze mid-flight; connections stay open)."""

    TABLES = "debits, account_spend, ledger_offsets, budget_accounts, budget_leases"

    def __init__(self, seconds):
        self.seconds = seconds
        self.stopped = []
        self.lock = None

    def begin(self):
        sql = "SET application_name = 'chaos-lock'; BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(%d); COMMIT;" % (self.TABLES, self.seconds + 30)
        self.lock = subprocess.Popen(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", DB, "-Xq", "-c", sql], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        q = "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND application_name = 'chaos-lock' AND wait_event = 'PgSleep'" % DB
        wait_until(lambda: psql(q).strip() != "", 60, "the stall's locks")
        self.lock_pid = int(psql(q).split()[0])
        pids = psql("SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND backend_type = 'client backend' AND pid <> %d" % (DB, self.lock_pid)).split()
        for p in pids:
            try:
                os.kill(int(p), signal.SIGSTOP)
                self.stopped.append(int(p))
            except ProcessLookupError:
                pass
        record_stopped(self.stopped)
        log("pg stall: locks held by backend %d, %d backends SIGSTOPped" % (self.lock_pid, len(self.stopped)))

    def end(self):
        for p in self.stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        record_stopped([])
        psql("SELECT pg_terminate_backend(%d)" % self.lock_pid, check=False)
        try:
            self.lock.wait(10)
        except subprocess.TimeoutExpired:
            self.lock.kill()
        log("pg stall over: %d backends SIGCONTed, locks released" % len(self.stopped))


# ------------------------------------------------------------------- load


BODY = '{"id":"%s","tmax":%d,"imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.1}],"site":{"id":"chaos-site","page":"https://chaos.example/"}}'


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    close = headers.get("connection", "").lower() == "close"
    return status, body, close


def wins_of(body):
    """(imp id, seat, price in micros) of every bid in a 200 answer."""
    doc = json.loads(body, parse_float=Decimal)
    out = []
    for sb in doc.get("seatbid") or []:
        for b in sb.get("bid") or []:
            micros = int((Decimal(b["price"]) * 1000000).to_integral_value())
            out.append((str(b["impid"]), sb.get("seat", ""), micros))
    return out


class Load:
    """Open-loop load: request i is due at t0 + i/rate, handed to the next
    free keep-alive connection (CONNS of them, spread over the targets).
    Never retried: a retry could reach the exchange twice with one id."""

    def __init__(self, prefix, ports, rate=RATE):
        self.prefix = prefix
        self.ports = ports
        self.rate = rate
        self.records = []
        self.stop = False

    async def worker(self, idx, queue):
        port = self.ports[idx % len(self.ports)]
        conn = None
        while True:
            item = await queue.get()
            if item is None:
                break
            seq, due = item
            rid = "%s-%d" % (self.prefix, seq)
            body = (BODY % (rid, TMAX)).encode()
            req = b"POST /openrtb2/auction HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            sent = time.monotonic()
            rec = {"id": rid, "port": port, "wait_ms": round((sent - due) * 1000, 2)}
            try:
                if conn is not None and conn[0].at_eof():
                    conn[1].close()
                    conn = None
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT_S)
                    sent = time.monotonic()
                conn[1].write(req)
                status, rbody, close = await asyncio.wait_for(read_response(conn[0]), TIMEOUT_S)
                rec["ms"] = round((time.monotonic() - sent) * 1000, 2)
                rec["status"] = status
                if status == 200:
                    rec["wins"] = wins_of(rbody)
                if close:
                    conn[1].close()
                    conn = None
            except Exception as e:
                rec["ms"] = round((time.monotonic() - sent) * 1000, 2)
                rec["status"] = "timeout" if isinstance(e, asyncio.TimeoutError) else type(e).__name__
                if conn is not None:
                    conn[1].close()
                    conn = None
            self.records.append(rec)
        if conn is not None:
            conn[1].close()

    async def run(self, duration):
        queue = asyncio.Queue()
        workers = [asyncio.create_task(self.worker(i, queue)) for i in range(CONNS)]
        t0 = time.monotonic()
        n = int(duration * self.rate)
        for i in range(n):
            due = t0 + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((i, due))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        return self.records


# ---------------------------------------------------------------- the rig


class Rig:
    def __init__(self):
        self.dir = OUT
        self.bidders = {}
        self.exchanges = []  # Proc with .port, .admin, .metrics, .cfg
        self.spool_dir = os.path.join(OUT, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        self.small_fs = None  # (mode, path) of the small spool filesystem
        self.kport = free_port()  # what the clients use: the proxy
        self.tport = free_port()  # tansu itself
        self.tansu = None
        self.proxy = Proc("kafka-proxy", [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "chaos_proxy.py"), str(self.kport), str(self.tport)])
        self.ledger = None
        self.beta_rate = None  # beta's spend, micros per second, measured

    # --- tansu
    def start_tansu(self):
        if self.tansu is None:
            self.tansu = Proc("tansu", [TANSU, "broker", "--listener-url", "tcp://127.0.0.1:%d" % self.tport, "--advertised-listener-url", "tcp://127.0.0.1:%d" % self.kport, "--storage-engine", STORAGE], env={"RUST_LOG": "warn"}, cwd=OUT)
            self.proxy.start()
        self.tansu.start()
        wait_until(lambda: port_open(self.tport), 30, "tansu")
        wait_until(lambda: port_open(self.kport), 30, "the kafka proxy")

    def kafka_down(self, mode=None):
        mode = mode or KAFKA_STOP
        if mode == "restart":
            self.tansu.stop()
            log("kafka: tansu stopped (SIGTERM)")
        elif mode == "cut":
            self.proxy.signal(signal.SIGUSR1)
            wait_until(lambda: not port_open(self.kport), 10, "the proxy to close")
            log("kafka: unreachable (proxy reset every connection, refuses new ones)")
        else:
            self.tansu.signal(signal.SIGSTOP)
            record_stopped([self.tansu.p.pid])
            log("kafka: tansu frozen (SIGSTOP)")

    def kafka_up(self, mode=None):
        mode = mode or KAFKA_STOP
        if mode == "restart":
            self.start_tansu()
            log("kafka: tansu restarted")
        elif mode == "cut":
            self.proxy.signal(signal.SIGUSR2)
            wait_until(lambda: port_open(self.kport), 10, "the proxy to listen")
            log("kafka: reachable again")
        else:
            self.tansu.signal(signal.SIGCONT)
            record_stopped([])
            log("kafka: tansu resumed (SIGCONT)")

    def create_topics(self):
        for t in (TOPIC, DLQ):
            r = subprocess.run([TANSU, "topic", "create", t, "--partitions", str(PARTITIONS), "--broker", "tcp://127.0.0.1:%d" % self.tport], capture_output=True, text=True, timeout=60)
            log("tansu topic create %s: rc %d %s" % (t, r.returncode, (r.stderr or r.stdout).strip()[:200]))

    # --- configs
    def kafka_section(self, name, spool_dir):
        return (
            "[kafka]\nbrokers = \"127.0.0.1:%d\"\ntopic = \"%s\"\ndlq_topic = \"%s\"\n"
            "spool_path = \"%s/%s.spool\"\ndead_letter_path = \"%s/%s.dead\"\n"
            "delivery_timeout_ms = 3000\nreplay_interval_ms = 1000\n"
            % (self.kport, TOPIC, DLQ, spool_dir, name, self.dir, name)
        )

    def ledger_section(self):
        return "[ledger]\nembedded = false\ndatabase_url = \"%s\"\ngroup_id = \"chaos-ledger\"\nassignment = \"%s\"\nbatch_max = 500\nbatch_ms = 100\n" % (DB_URL, LEDGER_ASSIGNMENT)

    def start_bidders(self):
        for seat, price in (("alpha", "0.5"), ("beta", "1.0")):
            p = Proc("bidder-" + seat, [os.path.join(BIN, "bidder"), "serve", "--listen", "127.0.0.1:0", "--seat", seat, "--price", price, "--seed", "7"])
            p.start()
            url = {}

            def seen():
                m = re.search(r"listening on (\S+)", open(p.log_path()).read())
                if m:
                    url["u"] = m.group(1)
                return bool(m)

            wait_until(seen, 20, "bidder %s" % seat)
            self.bidders[seat] = url["u"]

    def exchange_config(self, i, spool_dir=None):
        name = "ex%d" % i
        ex = self.exchanges[i]
        text = (
            "listen = \"127.0.0.1:%d\"\nadmin_listen = \"127.0.0.1:%d\"\nadmin_token = \"%s\"\n"
            "metrics_listen = \"127.0.0.1:%d\"\nsqlite_path = \"%s/%s-registry.db\"\n"
            % (ex.port, ex.admin, TOKEN, ex.metrics, self.dir, name)
        )
        for seat in ("alpha", "beta"):
            text += "[[bidders]]\nname = \"%s\"\nendpoints = [\"%s\"]\nprotocol = \"h2c\"\n" % (seat, self.bidders[seat])
        text += self.kafka_section(name, spool_dir or self.spool_dir)
        text += self.ledger_section()
        text += "[budget]\nenabled = true\nlease_ttl_ms = %d\n" % LEASE_TTL_MS
        with open(ex.cfg, "w") as f:
            f.write(text)

    def add_exchange(self):
        i = len(self.exchanges)
        ex = Proc("ex%d" % i, [])
        ex.port, ex.admin, ex.metrics = free_port(), free_port(), free_port()
        ex.cfg = os.path.join(self.dir, "ex%d.toml" % i)
        ex.argv = [os.path.join(BIN, "exchange"), "serve", "--config", ex.cfg]
        ex.counters = {}
        ex.base = {}
        self.exchanges.append(ex)
        self.exchange_config(i)
        return ex

    def start_exchange(self, ex, timeout=60):
        ex.start()
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % ex.metrics)[0] == 200 or not ex.alive(), timeout, "%s ready" % ex.name)
        if not ex.alive():
            raise RuntimeError("%s exited: see %s" % (ex.name, ex.log_path()))

    def start_ledger(self):
        if self.ledger is None:
            cfg = os.path.join(self.dir, "ledger.toml")
            with open(cfg, "w") as f:
                f.write(self.kafka_section("ledger", self.spool_dir) + self.ledger_section())
            self.ledger_metrics = free_port()
            self.ledger = Proc("ledger", [os.path.join(BIN, "exchange"), "ledger", "--config", cfg, "--metrics-addr", "127.0.0.1:%d" % self.ledger_metrics])
        self.ledger.start()
        wait_until(lambda: http_get("http://127.0.0.1:%d/healthz" % self.ledger_metrics)[0] == 200 or not self.ledger.alive(), 60, "ledger healthz")

    # --- metrics
    def scrape(self, ex):
        st, body = http_get("http://127.0.0.1:%d/metrics" % ex.metrics)
        vals = {}
        if st == 200:
            for line in body.decode().splitlines():
                m = re.match(r"^(rtb_events_\w+_total|rtb_spool_events|rtb_budget_lost_bids_total)(\{[^}]*\})?\s+([0-9.eE+-]+)$", line)
                if m:
                    vals[m.group(1)] = vals.get(m.group(1), 0) + float(m.group(3))
        return vals

    def bank(self, ex, restarting=False):
        """Adds what the counters moved since `ex.base` to the row's; before
        a kill or stop (`restarting`) the next incarnation starts at 0."""
        now = self.scrape(ex)
        for k, v in now.items():
            if k != "rtb_spool_events":
                ex.counters[k] = ex.counters.get(k, 0) + v - ex.base.get(k, 0)
        ex.base = {} if restarting else now

    # --- admin
    def admin(self, method, path, body=None, ex=None):
        ex = ex or self.exchanges[0]
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (ex.admin, path), data=data, method=method)
        req.add_header("Authorization", "Bearer " + TOKEN)
        if data:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def beta_spend(self, before_ms=None, since_ms=None, prefix=None):
        cond = "(account = 'beta' OR left(account, 5) = 'beta/')"
        if prefix is not None:
            cond += " AND left(request_id, %d) = '%s-'" % (len(prefix) + 1, prefix)
        if before_ms is not None:
            cond += " AND event_ts < %d" % before_ms
        if since_ms is not None:
            cond += " AND event_ts >= %d" % since_ms
        return scalar("SELECT COALESCE(SUM(amount_micros), 0) FROM debits WHERE " + cond)

    def set_beta_budget(self, total_micros):
        st, body = self.admin("PUT", "/v1/bidders/beta/budget", {"total": float(Decimal(total_micros) / 1000000)})
        if st not in (200, 201):
            raise RuntimeError("PUT budget: %s %s" % (st, body))
        return json.loads(body)

    # --- small filesystem for the spool
    def mount_small_fs(self):
        path = os.path.join(OUT, "smallfs")
        os.makedirs(path, exist_ok=True)
        mode = SPOOL_FS
        if mode in ("auto", "tmpfs"):
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk" % SPOOL_FS_KB, "chaos-spool", path], capture_output=True, text=True)
            if r.returncode == 0:
                self.small_fs = ("tmpfs", path)
                with open(os.path.join(OUT, "mounted"), "w") as f:
                    f.write(path + "\n")
                return self.small_fs
            if mode == "tmpfs":
                raise RuntimeError("mount tmpfs failed: " + r.stderr.strip())
            log("mount -t tmpfs not permitted (%s): using RLIMIT_FSIZE instead" % r.stderr.strip())
        self.small_fs = ("rlimit", path)
        return self.small_fs

    def umount_small_fs(self):
        if self.small_fs and self.small_fs[0] == "tmpfs":
            subprocess.run(["umount", "-l", self.small_fs[1]], capture_output=True)
            try:
                os.remove(os.path.join(OUT, "mounted"))
            except OSError:
                pass
        self.small_fs = None

    # --- catch-up
    def debit_count(self, prefix):
        return scalar("SELECT count(*) FROM debits WHERE left(request_id, %d) = '%s-'" % (len(prefix) + 1, prefix))

    def catch_up(self, prefix, expected, limit=180):
        """Waits until the row's debits stop moving: the expected count held
        for 3 s, or no change for 20 s, at most `limit` s."""
        t0 = time.time()
        last, since = -1, time.time()
        while True:
            try:
                n = self.debit_count(prefix)
            except Exception as e:
                log("catch-up: %s" % e)
                n = last
            if n != last:
                last, since = n, time.time()
            stable = time.time() - since
            if (n >= expected and stable >= 3) or stable >= 20 or time.time() - t0 > limit:
                return n, round(time.time() - t0 - stable, 1)
            time.sleep(1)


# ------------------------------------------------------------------- rows


class Row:
    def __init__(self, key, title, duration, budget_share=0.5):
        self.key = key
        self.title = title
        self.duration = duration
        self.budget_share = budget_share  # beta's budget: this share of its expected spend
        self.notes = []
        self.targets = None  # exchange indices the load goes to (default [0])
        self.overspend = None

    async def fault(self, rig, t0):
        """The fault, run beside the load; t0 is the load's start (monotonic)."""

    def before(self, rig):
        pass

    def after(self, rig):
        pass

    def budget_limit(self, rig):
        """Sets beta's total budget for the row; returns the limit."""
        spent = rig.beta_spend()
        allowance = int(rig.beta_rate * self.duration * self.budget_share)
        rig.set_beta_budget(spent + allowance)
        self.s_start, self.allowance = spent, allowance
        self.limit = spent + allowance
        return self.limit

    def measure_overspend(self, rig):
        """beta's spend on this row's auctions past the allowance. Debits of
        earlier rows that land during this one (late: see their rows) count
        against the budget too; they are reported, not charged to the row."""
        if self.limit is None:
            return 0
        own = rig.beta_spend(prefix=self.prefix)
        foreign = rig.beta_spend() - self.s_start - own
        if foreign:
            self.notes.append("%.2f units of earlier rows' beta debits landed during this row" % (foreign / 1e6))
        return max(0, own - self.allowance)


async def at(t0, seconds):
    delay = t0 + seconds - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def blocking(fn, *a):
    return asyncio.to_thread(fn, *a)


class Healthy(Row):
    def __init__(self):
        super().__init__("healthy", "none (healthy run)", D(30, 10))


class KafkaStop(Row):
    def __init__(self, mode=None, key="kafka-stop"):
        self.down = D(60, 12)
        self.mode = mode or KAFKA_STOP
        how = {"restart": "stopped (SIGTERM) %d s under load, restarted",
               "cut": "unreachable %d s under load (every connection reset, new ones refused), then back",
               "freeze": "frozen (SIGSTOP) %d s under load, resumed (SIGCONT)"}[self.mode]
        super().__init__(key, "Kafka broker " + how % self.down, D(10 + 60 + 20, 5 + 12 + 8))

    async def fault(self, rig, t0):
        await at(t0, D(10, 5))
        await blocking(rig.kafka_down, self.mode)
        await asyncio.sleep(self.down)
        await blocking(rig.kafka_up, self.mode)


class PgStop(Row):
    def __init__(self):
        super().__init__("pg-stop", "PostgreSQL stopped 30 s, restarted", D(10 + 30 + 15, 5 + 10 + 8))
        self.down = D(30, 10)
        self.title = "PostgreSQL stopped %d s, restarted" % self.down

    async def fault(self, rig, t0):
        await at(t0, D(10, 5))
        await blocking(pg_ctl, "stop")
        await asyncio.sleep(self.down)
        await blocking(pg_ctl, "start")
        await blocking(wait_until, pg_ready, 60, "PostgreSQL back")


class PgStallRow(Row):
    def __init__(self, key="pg-stall", replicas=1, share=0.5):
        self.stall = LEASE_TTL_MS // 1000 + 5
        super().__init__(key, "PostgreSQL stalled %d s (lease TTL %d s): locks + backends SIGSTOPped" % (self.stall, LEASE_TTL_MS // 1000), D(10, 5) + self.stall + D(15, 8), share)

    async def fault(self, rig, t0):
        await at(t0, D(10, 5))
        stall = PgStall(self.stall)
        await blocking(stall.begin)
        await asyncio.sleep(self.stall)
        await blocking(stall.end)


class LedgerKill(Row):
    def __init__(self):
        super().__init__("ledger-kill", "ledger SIGKILLed mid-batch, restarted", D(40, 20))

    def in_batch(self):
        q = ("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' "
             "AND application_name <> 'chaos-lock'" % DB)
        return int(psql(q).strip() or 0) > 0

    def kill_locked(self):
        """Holds EXCLUSIVE on account_spend (reads go on, writes wait), waits
        until a ledger transaction blocks on it after inserting its debits,
        and SIGKILLs the ledger there: mid-batch by construction."""
        sql = "SET application_name = 'chaos-lock'; BEGIN; LOCK TABLE account_spend IN EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;"
        lock = subprocess.Popen(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", DB, "-Xq", "-c", sql], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self.in_batch, 7, "a ledger transaction waiting on account_spend", interval=0.05)
            rig_ledger = self.rig.ledger
            rig_ledger.kill()
            self.notes.append("kill 1: ledger SIGKILLed while its batch transaction waited on a held lock (debits inserted, not committed)")
            log("ledger SIGKILLed mid-batch (blocked in its transaction)")
        except RuntimeError:
            self.rig.ledger.kill()
            self.notes.append("kill 1: no ledger transaction seen blocked within 7 s; SIGKILLed anyway")
        finally:
            psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chaos-lock'", check=False)
            lock.wait(10)

    def kill_backlog(self):
        """SIGSTOPs the ledger 5 s (a backlog builds), SIGCONTs it and
        SIGKILLs it 300 ms later, while it drains in 500-event batches."""
        led = self.rig.ledger
        led.signal(signal.SIGSTOP)
        time.sleep(5)
        before = self.rig.debit_count(self.prefix)
        led.signal(signal.SIGCONT)
        time.sleep(0.3)
        led.kill()
        after = self.rig.debit_count(self.prefix)
        self.notes.append("kill 2: SIGKILLed 0.3 s into draining a 5 s backlog (%d debits committed meanwhile)" % (after - before))
        log("ledger SIGKILLed while draining a backlog")

    async def fault(self, rig, t0):
        self.rig = rig
        await at(t0, D(8, 4))
        await blocking(self.kill_locked)
        await asyncio.sleep(1)
        await blocking(rig.start_ledger)
        await at(t0, D(20, 10))
        await blocking(self.kill_backlog)
        await asyncio.sleep(1)
        await blocking(rig.start_ledger)


class ExchangeKill(Row):
    def __init__(self):
        super().__init__("exchange-kill", "exchange SIGKILLed under load, restarted (spool + log replay)", D(45, 22))

    def kill_restart(self, ex):
        self.rig.bank(ex, restarting=True)
        ex.kill()
        log("%s SIGKILLed" % ex.name)
        self.rig.start_exchange(ex)
        log("%s restarted" % ex.name)

    async def fault(self, rig, t0):
        self.rig = rig
        ex = rig.exchanges[0]
        # Kill 1: Kafka up.
        await at(t0, D(8, 5))
        await blocking(self.kill_restart, ex)
        if SHORT:
            return
        # Kill 2: Kafka down for 12 s, so events wait in the spool; the
        # restarted process must replay them.
        await at(t0, D(18, 0))
        await blocking(rig.kafka_down)
        await at(t0, D(24, 0))
        await blocking(self.kill_restart, ex)
        await at(t0, D(30, 0))
        await blocking(rig.kafka_up)
        self.notes.append("kill 1 with Kafka up; kill 2 with Kafka %s from 6 s before to 6 s after it, so the restart replays a spool" % ({"restart": "stopped", "cut": "unreachable"}.get(KAFKA_STOP, "frozen")))


class SpoolFull(Row):
    def __init__(self):
        super().__init__("spool-full", "spool's disk full (Kafka unreachable 20 s, spool on a %d KiB tmpfs)" % SPOOL_FS_KB, D(45, 25))

    def before(self, rig):
        mode, path = rig.mount_small_fs()
        ex = rig.exchanges[0]
        rig.bank(ex, restarting=True)
        ex.stop()
        rig.exchange_config(0, spool_dir=path)
        if mode == "rlimit":
            ex.fsize_limit = SPOOL_FS_KB * 1024
            self.title = "spool's disk full (Kafka unreachable 20 s; equivalent: RLIMIT_FSIZE %d KiB on the exchange)" % SPOOL_FS_KB
            self.notes.append("mount not permitted: the exchange ran under RLIMIT_FSIZE=%d KiB (writes past it fail with EFBIG, not ENOSPC)" % SPOOL_FS_KB)
        else:
            self.notes.append("spool on a tmpfs of %d KiB" % SPOOL_FS_KB)
        rig.start_exchange(ex)

    async def fault(self, rig, t0):
        await at(t0, D(5, 3))
        await blocking(rig.kafka_down)
        log("the spool fills its small filesystem")
        await at(t0, D(25, 13))
        await blocking(rig.kafka_up)

    def after(self, rig):
        ex = rig.exchanges[0]
        spool = os.path.join(rig.small_fs[1], "ex0.spool")
        try:
            self.notes.append("spool file %d bytes at the end" % os.path.getsize(spool))
        except OSError:
            pass
        if rig.small_fs[0] == "tmpfs":
            st = os.statvfs(rig.small_fs[1])
            self.notes.append("filesystem %d of %d KiB free at the end" % (st.f_bavail * st.f_frsize // 1024, st.f_blocks * st.f_frsize // 1024))
        rig.bank(ex, restarting=True)
        ex.stop()
        ex.fsize_limit = None
        rig.exchange_config(0)
        rig.umount_small_fs()
        rig.start_exchange(ex)


class ThreeReplicas(PgStallRow):
    def __init__(self):
        super().__init__("replicas-stall", replicas=3)
        # Small: what beta spends in the 5 s before the stall and 5 s more,
        # so leases are held when the database stalls and it runs out after.
        self.budget_share = (D(10, 5) + 5) / self.duration
        self.title = "3 replicas share one small budget while PostgreSQL stalls %d s (lease TTL %d s)" % (self.stall, LEASE_TTL_MS // 1000)

    def before(self, rig):
        while len(rig.exchanges) < 3:
            rig.add_exchange()
        for ex in rig.exchanges[1:3]:
            rig.start_exchange(ex)
        self.targets = [0, 1, 2]

    def after(self, rig):
        for ex in rig.exchanges[1:3]:
            rig.bank(ex, restarting=True)
            ex.stop()


class BudgetLifecycle(Row):
    def __init__(self):
        super().__init__("budget-crud", "budget created, lowered, deleted under load", D(40, 20))

    def budget_limit(self, rig):
        st, body = rig.admin("DELETE", "/v1/bidders/beta/budget")
        self.limit = None
        return None

    async def fault(self, rig, t0):
        r = rig.beta_rate
        await at(t0, D(5, 3))
        s0 = await blocking(rig.beta_spend)
        self.a1 = int(r * D(20, 10))
        self.l1 = s0 + self.a1
        self.t_create = now_ms()
        self.marks = {"s0": s0, "a1": self.a1, "l1": self.l1, "t_create": self.t_create}
        await blocking(rig.set_beta_budget, self.l1)
        self.t_created = now_ms()
        self.marks["t_created"] = self.t_created
        log("budget created: total %d micros (spent %d)" % (self.l1, s0))
        await at(t0, D(15, 8))
        s1 = await blocking(rig.beta_spend)
        self.l2 = s1 + int(r * D(5, 3))
        self.t_lower = now_ms()
        await blocking(rig.set_beta_budget, self.l2)
        self.marks.update({"s1": s1, "l2": self.l2, "t_lower": self.t_lower, "t_lowered": now_ms()})
        log("budget lowered: total %d micros (spent %d)" % (self.l2, s1))
        await at(t0, D(30, 15))
        self.t_delete = now_ms()
        st, body = await blocking(rig.admin, "DELETE", "/v1/bidders/beta/budget")
        self.marks.update({"t_delete": self.t_delete, "t_deleted": now_ms()})
        log("budget deleted: %s" % st)

    def measure_overspend(self, rig):
        # Phase 1: created (limit l1, a1 free at creation) until lowered.
        # Wins awarded before the budget existed and debited after it was
        # made are not the budget's (they were free then): phase 1 counts
        # the auctions settled after the create answer only.
        p1 = rig.beta_spend(since_ms=self.t_created, before_ms=self.t_lower)
        over1 = max(0, p1 - self.a1)
        # Phase 2: the lowered total l2 covers every debit before the delete.
        over2 = max(0, rig.beta_spend(before_ms=self.t_delete) - self.l2)
        self.notes.append("created %.2f units free, lowered to a total of %.2f, deleted; spent %.2f while created, %.2f in total before the delete" % (
            self.a1 / 1e6, self.l2 / 1e6, p1 / 1e6, rig.beta_spend(before_ms=self.t_delete) / 1e6))
        self.marks.update({"over1": over1, "over2": over2, "p1": p1})
        leases = psql("SELECT instance, granted_micros, awarded_micros, debited_micros, expires_ms FROM budget_leases WHERE account = 'beta' ORDER BY expires_ms DESC", DB)
        self.marks["leases_after"] = leases.splitlines()
        return max(over1, over2)


# ------------------------------------------------------------------ runner


async def run_row(rig, row):
    prefix = "%s-%s" % (RUN, row.key)
    row.prefix = prefix
    log("row %s: %s (%d s)" % (row.key, row.title, row.duration))
    row.before(rig)
    targets = [rig.exchanges[i] for i in (row.targets or [0])]
    for ex in targets:
        ex.counters = {}
    row.budget_limit(rig)
    load = Load(prefix, [ex.port for ex in targets])
    t0 = time.monotonic()
    load_task = asyncio.create_task(load.run(row.duration))
    fault_task = asyncio.create_task(row.fault(rig, t0))
    records = await load_task
    await fault_task
    log("row %s: load done, %d requests; waiting for the ledger" % (row.key, len(records)))
    wins = {}
    for r in records:
        for imp, seat, micros in r.get("wins", []):
            wins[(r["id"], imp)] = (micros, seat)
    n, caught = rig.catch_up(prefix, len(wins))
    for ex in targets:
        rig.bank(ex)
    recovered = None
    if n < len(wins):
        # Not caught up: restart the ledger and every exchange (SIGTERM
        # drains and keeps the spool; the new process replays it) so that the
        # next row starts clean, and count what is still missing after that.
        log("row %s: %d of %d wins debited; restarting the ledger and the exchanges" % (row.key, n, len(wins)))
        if PERSISTENT:
            rig.tansu.stop()
            rig.start_tansu()
        rig.ledger.stop()
        rig.start_ledger()
        for ex in rig.exchanges:
            if ex.alive():
                rig.bank(ex, restarting=True)
                ex.stop()
                rig.start_exchange(ex)
        n2, _ = rig.catch_up(prefix, len(wins))
        recovered = n2
    row.after(rig)
    # The row's debits.
    rows = psql("SELECT request_id, imp_id, amount_micros, account, auction_id FROM debits WHERE left(request_id, %d) = '%s-'" % (len(prefix) + 1, prefix), DB)
    debits = {}
    for line in rows.splitlines():
        rid, imp, amount, account, auction = line.split("\t")
        debits.setdefault((rid, imp), []).append((int(amount), account, auction))
    lost = [k for k in wins if k not in debits]
    lost_before_restart = len(wins) - n if recovered is not None else None
    doubled = sum(len(v) - 1 for v in debits.values())
    mismatched = [k for k in wins if k in debits and debits[k][0][0] != wins[k][0]]
    status_of = {r["id"]: r["status"] for r in records}
    unanswered = [k for k in debits if k not in wins]
    overspend = row.measure_overspend(rig)
    answered = [r for r in records if r["status"] in (200, 204)]
    within = [r for r in answered if r["ms"] <= TMAX]
    statuses = {}
    for r in records:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    counters = {}
    for ex in targets + ([rig.exchanges[0]] if rig.exchanges[0] not in targets else []):
        for k, v in ex.counters.items():
            counters[k] = counters.get(k, 0) + v
    res = {
        "key": row.key, "fault": row.title, "sent": len(records), "answered": len(answered),
        "within_pct": round(100.0 * len(within) / len(answered), 2) if answered else 0.0,
        "sum_prices": sum(m for m, _ in wins.values()),
        "sum_debits": sum(v[0] for vs in debits.values() for v in vs),
        "wins": len(wins), "debits": sum(len(v) for v in debits.values()),
        "lost": len(lost), "doubled": doubled, "mismatched": len(mismatched),
        "unanswered_debits": len(unanswered), "overspend": overspend,
        "limit": row.limit, "statuses": statuses, "caught_up_s": caught,
        "beta_wins": sum(1 for m, s in wins.values() if s == "beta"),
        "counters": {k: int(v) for k, v in sorted(counters.items())},
        "p99_ms": sorted(r["ms"] for r in answered)[int(0.99 * (len(answered) - 1))] if answered else None,
        "max_ms": max((r["ms"] for r in answered), default=None),
        "notes": list(row.notes),
        "lost_before_restart": lost_before_restart,
        "marks": getattr(row, "marks", {}),
    }
    if recovered is not None:
        res["lost"] = lost_before_restart
        res["notes"].append("**%d wins not debited %s s after the load; after the %s restarted (SIGTERM, new processes): %d still missing**" % (lost_before_restart, caught, "broker, ledger and exchange were" if PERSISTENT else "ledger and exchange were", len(lost)))
        res["lost_after_restart"] = len(lost)
    if unanswered:
        kinds = {}
        for k in unanswered:
            s = str(status_of.get(k[0], "never sent"))
            kinds[s] = kinds.get(s, 0) + 1
        res["notes"].append("%d debits for requests not answered 200 (client saw: %s)" % (len(unanswered), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    if lost:
        res["lost_sample"] = [list(k) for k in lost[:20]]
    if mismatched:
        res["mismatched_sample"] = [[k[0], k[1], wins[k][0], debits[k][0][0]] for k in mismatched[:20]]
    with open(os.path.join(OUT, "%s.requests.jsonl" % row.key), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    log("row %s: %s" % (row.key, json.dumps({k: v for k, v in res.items() if k not in ("notes",)})))
    return res


def table(results, baseline_pct):
    head = "| fault | sent | answered | within tmax (%) | Σ clearing prices answered (µ) | Σ debits in the ledger (µ) | debits lost | debits doubled | overspend (µ) | notes |"
    lines = [head, "|" + " --- |" * 10]
    for r in results:
        notes = list(r["notes"])
        codes = ", ".join("%s %d" % kv for kv in sorted(r["statuses"].items()))
        notes.insert(0, "answers: " + codes)
        if r["mismatched"]:
            notes.append("**%d debits differ from the price answered**" % r["mismatched"])
        c = r["counters"]
        ev = ", ".join("%s %d" % (k.replace("rtb_events_", "").replace("_total", ""), v) for k, v in c.items() if k.startswith("rtb_events_") and v)
        if ev:
            notes.append("events: " + ev)
        if c.get("rtb_budget_lost_bids_total"):
            notes.append("budget-lost bids %d" % c["rtb_budget_lost_bids_total"])
        if baseline_pct is not None and r["within_pct"] < baseline_pct - DEADLINE_SLACK_PP:
            notes.append("**deadline adherence below the healthy run's %.2f%%**" % baseline_pct)
        if r["limit"] is not None:
            notes.append("beta budget %.2f units" % (r["limit"] / 1e6))
        notes.append("p99 %s ms, max %s ms; ledger caught up %s s after the load" % (r["p99_ms"], r["max_ms"], r["caught_up_s"]))
        lines.append("| %s | %d | %d | %.2f | %d | %d | %d | %d | %d | %s |" % (
            r["fault"], r["sent"], r["answered"], r["within_pct"], r["sum_prices"], r["sum_debits"],
            r["lost"], r["doubled"], r["overspend"], "; ".join(notes).replace("|", "/")))
    return "\n".join(lines)


async def main():
    choose_storage()
    rows = [Healthy(), KafkaStop(), PgStop(), PgStallRow(), LedgerKill(), ExchangeKill(), SpoolFull(), ThreeReplicas(), BudgetLifecycle()]
    if KAFKA_STOP != "freeze" and not SHORT:
        # The broker frozen rather than stopped, last: after it neither
        # client recovers in our runs (see perf/RESULTS.md), which would
        # spoil the rows after it.
        rows.append(KafkaStop("freeze", "kafka-freeze"))
    if ONLY:
        rows = [r for r in rows if r.key in ONLY or r.key == "healthy"]
        if "kafka-freeze" in ONLY:
            rows.append(KafkaStop("freeze", "kafka-freeze"))
    elif SHORT:
        rows = [r for r in rows if r.key in ("healthy", "kafka-stop", "pg-stall", "ledger-kill", "exchange-kill", "spool-full", "budget-crud")]
    rig = Rig()
    psql("CREATE DATABASE %s" % DB)
    with open(os.path.join(OUT, "database"), "w") as f:
        f.write(DB + "\n")
    log("scratch database %s; tansu on 127.0.0.1:%d (%s)" % (DB, rig.kport, STORAGE))
    rig.start_tansu()
    rig.create_topics()
    rig.start_bidders()
    rig.start_ledger()
    ex = rig.add_exchange()
    rig.start_exchange(ex)
    # Warm-up, not in the table: beta's spend rate with no budget sizes the
    # budgets of the rows.
    warm = Load("%s-warmup" % RUN, [ex.port])
    recs = await warm.run(5)
    beta = sum(m for r in recs for _, s, m in r.get("wins", []) if s == "beta")
    rig.beta_rate = beta / 5.0
    warm_wins = sum(len(r.get("wins", [])) for r in recs)
    rig.catch_up("%s-warmup" % RUN, warm_wins)
    log("warm-up: %d requests, beta spends %.0f micros/s" % (len(recs), rig.beta_rate))
    if rig.beta_rate <= 0:
        raise RuntimeError("beta won nothing in the warm-up: see %s" % OUT)
    results = []
    for row in rows:
        results.append(await run_row(rig, row))
    base = results[0]["within_pct"] if results and results[0]["key"] == "healthy" else None
    t = table(results, base)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(t + "\n")
    print(t)
    bad = [r for r in results if r["lost"] or r["doubled"] or r["overspend"] or r["mismatched"]]
    if bad:
        print("\nINVARIANT BROKEN in: %s" % ", ".join(r["key"] for r in bad))
        return 1
    print("\nall rows: lost = doubled = overspend = 0")
    return 0


def cleanup():
    for p in open(STOPPED_PIDS_FILE).read().split() if os.path.exists(STOPPED_PIDS_FILE) else []:
        try:
            os.kill(int(p), signal.SIGCONT)
        except (ProcessLookupError, ValueError):
            pass
    Proc.kill_all()
    if not pg_ready():
        pg_ctl("start")
        try:
            wait_until(pg_ready, 60, "PostgreSQL")
        except RuntimeError as e:
            log(str(e))
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chaos-lock'", check=False)
    if os.environ.get("CHAOS_KEEP_DB", "") in ("", "0"):
        psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, check=False)
    m = os.path.join(OUT, "mounted")
    if os.path.exists(m):
        subprocess.run(["umount", "-l", open(m).read().strip()], capture_output=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rc = 2
    try:
        rc = asyncio.run(main())
    except KeyboardInterrupt:
        rc = 130
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except Exception as e:
        log("error: %r" % e)
        import traceback
        traceback.print_exc()
        rc = 2
    finally:
        cleanup()
    sys.exit(rc)
