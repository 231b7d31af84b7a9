#!/usr/bin/python3
"""Database and cache clients for lab/db.sh: psycopg2, PyMySQL or redis-py reusing a pooled
connection after an idle, one connection per idle, all idles at once (each in its thread).

Each connection: connect, a first request (its answer ends the "previous" exchange), sleep
IDLE seconds, a second request on the same connection object (the reuse that meets the
server's idle close, the router's reset or its silence), then close as the library does.
One JSON line per connection goes to --log: the client name, idle, the local port of the
first connection (and of the one that carried the second request, when the library opened
a new one by itself), the outcome (ok / the exception's class and text as the library
raised it) and how long the second request took.

--witness S: one more connection S seconds after the start, with one request: it proves
the path to the server works while a forgotten connection is silent (lab/db.sh's
blackhole phase).

Only the Python the Debian packages serve: python3-psycopg2, python3-pymysql, python3-redis.
"""
import argparse, json, socket, ssl, threading, time


# The application's query: not what a pool validates with (SELECT 1, PING), which staleconn
# names as a validation query.
QUERY = "SELECT now()"


def local_port_of_fd(fd):
    s = socket.socket(fileno=socket.dup(fd))
    try:
        return s.getsockname()[1]
    finally:
        s.close()


class Postgres:
    def __init__(self, a):
        import psycopg2
        self.mod = psycopg2
        self.kw = dict(host=a.host, port=a.port, user="postgres", dbname="postgres",
                       connect_timeout=5,
                       sslmode="require" if a.tls else "disable",
                       # a blackholed request gives up after 10 s, not TCP's 15 minutes
                       # (libpq sets TCP_USER_TIMEOUT only with keepalives on; their first
                       # probe, after 600 s, never comes in the lab)
                       tcp_user_timeout=10000, keepalives=1, keepalives_idle=600)

    def connect(self):
        c = self.mod.connect(**self.kw)
        c.autocommit = True       # else idle_in_transaction_session_timeout is the timer
        return c

    def request(self, c):
        with c.cursor() as cur:
            cur.execute(QUERY)
            cur.fetchall()

    def port(self, c):
        return local_port_of_fd(c.fileno())


class Mysql:
    def __init__(self, a):
        import pymysql
        self.mod = pymysql
        self.kw = dict(host=a.host, port=a.port, user="lab", connect_timeout=5,
                       read_timeout=10, write_timeout=10)
        if a.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.kw["ssl"] = ctx

    def connect(self):
        return self.mod.connect(**self.kw)

    def request(self, c):
        with c.cursor() as cur:
            cur.execute(QUERY)
            cur.fetchall()

    def port(self, c):
        return c._sock.getsockname()[1]


class Redis:
    def __init__(self, a):
        import redis
        self.mod = redis
        self.kw = dict(host=a.host, port=a.port, socket_timeout=10, socket_connect_timeout=5)

    def connect(self):
        # the default ConnectionPool, as applications use it
        return self.mod.Redis(**self.kw)

    def request(self, c):
        c.get("lab:key")

    def port(self, c):
        conns = c.connection_pool._available_connections
        return conns[0]._sock.getsockname()[1] if conns and conns[0]._sock else None


def one(lib, a, idle, log, lock):
    rec = {"client": a.client_name, "idle": idle, "mode": a.mode}
    c = None
    try:
        c = lib.connect()
        lib.request(c)
        rec["port"] = lib.port(c)
        time.sleep(idle)
        t = time.monotonic()
        try:
            lib.request(c)
            rec["outcome"] = "ok"
            rec["second_port"] = lib.port(c)
        except Exception as e:               # what the library raised, as it raised it
            rec["outcome"] = "error"
            rec["error"] = f"{type(e).__module__}.{type(e).__name__}: {e}".strip()
        rec["second_s"] = round(time.monotonic() - t, 3)
    except Exception as e:
        rec["outcome"] = "setup_error"
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            if c is not None:
                c.close()
        except Exception as e:
            rec["close_error"] = f"{type(e).__name__}: {e}"
    with lock:
        log.write(json.dumps(rec) + "\n")
        log.flush()


def witness(lib, a, log, lock):
    rec = {"client": a.client_name, "mode": "witness"}
    try:
        c = lib.connect()
        lib.request(c)
        rec["port"] = lib.port(c)
        rec["outcome"] = "ok"
        c.close()
    except Exception as e:
        rec["outcome"] = "error"
        rec["error"] = f"{type(e).__name__}: {e}"
    with lock:
        log.write(json.dumps(rec) + "\n")
        log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", choices=["pg", "mysql", "redis"], required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--idles", required=True, help="comma-separated seconds")
    ap.add_argument("--mode", default="race")
    ap.add_argument("--witness", type=float, help="seconds after the start")
    ap.add_argument("--log", required=True)
    ap.add_argument("--client-name", required=True)
    a = ap.parse_args()
    lib = {"pg": Postgres, "mysql": Mysql, "redis": Redis}[a.proto](a)
    lock = threading.Lock()
    with open(a.log, "a") as log:
        threads = []
        for i, idle in enumerate(float(x) for x in a.idles.split(",")):
            t = threading.Thread(target=one, args=(lib, a, idle, log, lock), daemon=True)
            t.start()
            threads.append(t)
            time.sleep(0.05)   # handshakes one after the other
        if a.witness is not None:
            time.sleep(max(0.0, a.witness - 0.05 * len(threads)))
            witness(lib, a, log, lock)
        for t in threads:
            t.join(timeout=120)


if __name__ == "__main__":
    main()
