// Shared by JdkSweep and ApacheSweep: command line, timing, JSON log lines.
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.net.Socket;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedTrustManager;

final class SweepCommon {
    static final long T0 = System.nanoTime();
    static final int REQUEST_TIMEOUT_S = 10;

    String url, logPath, clientName, method = "GET", tlsVersion = "TLSv1.3";
    boolean retry = true;
    final List<String> idleStrs = new ArrayList<>();
    final List<Double> idles = new ArrayList<>();
    double maxIdle = 0;
    private FileOutputStream log;
    private final boolean[] done;

    SweepCommon(String[] args, String defaultName, String usageExtra) {
        String idlesArg = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i].startsWith("--") ? args[i].substring(1) : args[i];
            switch (a) {
                case "-url": url = val(args, ++i, usageExtra); break;
                case "-idles": idlesArg = val(args, ++i, usageExtra); break;
                case "-log": logPath = val(args, ++i, usageExtra); break;
                case "-client-name": clientName = val(args, ++i, usageExtra); break;
                case "-method": method = val(args, ++i, usageExtra).toUpperCase(Locale.ROOT); break;
                case "-tls12": tlsVersion = "TLSv1.2"; break;
                case "-tls13": tlsVersion = "TLSv1.3"; break;
                case "-no-retry": retry = false; break;
                default: usage("unknown argument " + args[i], usageExtra);
            }
        }
        if (url == null || logPath == null || idlesArg == null) usage("--url, --idles and --log are required", usageExtra);
        if (!method.equals("GET") && !method.equals("POST")) usage("--method must be GET or POST", usageExtra);
        while (url.endsWith("/")) url = url.substring(0, url.length() - 1);
        if (clientName == null) clientName = defaultName;
        for (String s : idlesArg.split(",")) {
            s = s.trim();
            if (s.isEmpty()) continue;
            double v = -1;
            try { v = Double.parseDouble(s); } catch (NumberFormatException e) { /* reported below */ }
            if (v < 0 || Double.isNaN(v) || Double.isInfinite(v)) usage("bad idle value " + s, usageExtra);
            idleStrs.add(s); idles.add(v); maxIdle = Math.max(maxIdle, v);
        }
        if (idles.isEmpty()) usage("no idle values", usageExtra);
        done = new boolean[idles.size()];
        try { log = new FileOutputStream(logPath, true); }   // O_APPEND
        catch (IOException e) { System.err.println("cannot open log: " + e); System.exit(2); }
    }

    private static String val(String[] args, int i, String extra) {
        if (i >= args.length) usage("missing value for " + args[i - 1], extra);
        return args[i];
    }

    private static void usage(String msg, String extra) {
        System.err.println(msg);
        System.err.println("usage: --url https://HOST:PORT --idles 4.90,4.94 --log FILE [--client-name NAME] [--tls12|--tls13] [--method GET|POST]" + extra);
        System.exit(2);
    }

    static double since() { return Math.round((System.nanoTime() - T0) / 1e5) / 1e4; }

    /** Sleeps until startNanos + seconds. */
    static void sleepUntil(long startNanos, double seconds) {
        long deadline = startNanos + (long) (seconds * 1e9);
        long left;
        while ((left = deadline - System.nanoTime()) > 0) LockSupport.parkNanos(left);
    }

    /** "error: TYPE: MESSAGE"; a null message is followed by the causes' ("(cause TYPE: MESSAGE)"). */
    static String errorOutcome(Throwable e) {
        StringBuilder b = new StringBuilder("error: ").append(e.getClass().getName()).append(": ").append(e.getMessage());
        for (Throwable c = e; c.getMessage() == null && c.getCause() != null && c.getCause() != c; ) {
            c = c.getCause();
            b.append(" (cause ").append(c.getClass().getName()).append(": ").append(c.getMessage()).append(')');
        }
        return b.toString();
    }

    /** Unwraps ExecutionException/CompletionException to the library's exception. */
    static Throwable unwrap(Throwable e) {
        while ((e instanceof java.util.concurrent.ExecutionException
                || e instanceof java.util.concurrent.CompletionException) && e.getCause() != null)
            e = e.getCause();
        return e;
    }

    /** One JSON line, written with one write(2) on an O_APPEND file, once per idle index. */
    synchronized boolean write(int i, Map<String, Object> rec) {
        if (done[i]) return false;
        done[i] = true;
        rec.put("t", since());
        String line = json(rec) + "\n";
        try {
            log.write(line.getBytes(StandardCharsets.UTF_8));
            log.flush();
            log.getFD().sync();
        } catch (IOException e) {
            System.err.println("log write failed: " + e);
            return false;
        }
        return true;
    }

    synchronized int written() { int n = 0; for (boolean b : done) if (b) n++; return n; }

    Map<String, Object> record(int i) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("client", clientName);
        m.put("role", "sweep");
        m.put("idle", idles.get(i));
        m.put("lport", null);
        m.put("lport2", null);
        m.put("reused", null);
        m.put("outcome", null);
        m.put("method", method);
        m.put("path2", "/sweep/" + idleStrs.get(i) + "/2");
        m.put("tls", tlsVersion.substring(4));
        return m;
    }

    interface Sweep { void run(int i, Runnable firstDone) throws Exception; }

    /**
     * Runs sweep(i) for every idle value in its own thread, bounded by
     * maxIdle + 30 s, then exits.  Request 1 of idle i starts 0.15 s after
     * request 1 of idle i-1 started (and at least 0.15*i s after program
     * start), and not before response 1 of idle i-1 was read or failed (at
     * most 12 s): a cold JVM takes ~0.3 s over its first TLS request, and
     * without this the first responses, hence the server's closes, bunch up.
     */
    void runAll(Sweep sweep) {
        int n = idles.size();
        java.util.concurrent.CountDownLatch[] first = new java.util.concurrent.CountDownLatch[n];
        long[] started = new long[n];
        for (int k = 0; k < n; k++) first[k] = new java.util.concurrent.CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            final int i = k;
            Thread t = new Thread(() -> {
                try {
                    long at = T0 + (long) (0.15e9 * i);
                    if (i > 0) {
                        first[i - 1].await(12, java.util.concurrent.TimeUnit.SECONDS);
                        synchronized (started) { at = Math.max(at, started[i - 1] + 150_000_000L); }
                    }
                    sleepUntil(at, 0);
                    synchronized (started) { started[i] = System.nanoTime(); }
                    sweep.run(i, first[i]::countDown);
                } catch (Throwable e) {
                    Map<String, Object> rec = record(i);
                    rec.put("outcome", "internal " + errorOutcome(e));
                    write(i, rec);
                } finally {
                    first[i].countDown();
                }
            }, "sweep-" + idleStrs.get(i));
            t.setDaemon(true);
            t.start();
            threads.add(t);
        }
        long deadline = T0 + (long) ((maxIdle + 30) * 1e9);
        for (Thread t : threads) {
            long left = deadline - System.nanoTime();
            if (left > 0) {
                try { t.join(Math.max(1, left / 1_000_000)); } catch (InterruptedException e) { break; }
            }
        }
        int code = 0;
        for (int i = 0; i < idles.size(); i++) {   // watchdog: lines for whatever did not report
            Map<String, Object> rec = record(i);
            rec.put("outcome", String.format(Locale.ROOT, "error: watchdog: no outcome within %.1f s", maxIdle + 30));
            if (write(i, rec)) code = 3;
        }
        if (code == 0 && written() != idles.size()) code = 1;
        try { log.close(); } catch (IOException e) { code = 1; }
        System.out.flush();
        Runtime.getRuntime().halt(code);   // do not wait for library threads
    }

    static SSLContext trustAll(String protocol) throws Exception {
        TrustManager tm = new X509ExtendedTrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public void checkClientTrusted(X509Certificate[] c, String a, Socket s) {}
            public void checkServerTrusted(X509Certificate[] c, String a, Socket s) {}
            public void checkClientTrusted(X509Certificate[] c, String a, SSLEngine e) {}
            public void checkServerTrusted(X509Certificate[] c, String a, SSLEngine e) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        };
        SSLContext ctx = SSLContext.getInstance(protocol);
        ctx.init(null, new TrustManager[] {tm}, new SecureRandom());
        return ctx;
    }

    static String json(Object o) {
        if (o == null) return "null";
        if (o instanceof Boolean || o instanceof Integer || o instanceof Long) return o.toString();
        if (o instanceof Double) {
            double d = (Double) o;
            if (d == Math.rint(d) && Math.abs(d) < 1e15) return Long.toString((long) d) + ".0";
            return Double.toString(d);
        }
        if (o instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (!first) b.append(", ");
                first = false;
                b.append(json(e.getKey().toString())).append(": ").append(json(e.getValue()));
            }
            return b.append('}').toString();
        }
        String s = o.toString();
        StringBuilder b = new StringBuilder("\"");
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
