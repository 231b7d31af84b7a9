// Keep-alive race sweep client for the staleconn lab: Apache HttpClient 4.5
// (Debian's libhttpclient-java), PoolingHttpClientConnectionManager with the
// stale-connection check off (validateAfterInactivity -1, the deprecated
// staleConnectionCheckEnabled false), so a pooled connection is reused
// without looking at it first; trust-all TLS, TLS version pinned.
//
//   java -cp DIR:/usr/share/java/httpclient.jar:/usr/share/java/httpcore.jar:/usr/share/java/commons-logging.jar \
//        ApacheSweep --url https://HOST:PORT --idles 4.90,4.94 --log FILE
//        [--client-name NAME] [--tls12|--tls13] [--method GET|POST] [--no-retry]
//
// One client and pool per idle value.  The library's default retry handler
// (DefaultHttpRequestRetryHandler: 3 retries; a GET is retried after an
// IOException such as NoHttpResponseException, a POST that was sent is not)
// is kept, wrapped to record what it retried; --no-retry disables automatic
// retries.  Every attempt's local port is taken from the connection
// (HttpInetConnection) as the request goes out.  See ../README.md.
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.apache.http.HttpClientConnection;
import org.apache.http.HttpException;
import org.apache.http.HttpInetConnection;
import org.apache.http.HttpRequest;
import org.apache.http.HttpResponse;
import org.apache.http.client.HttpRequestRetryHandler;
import org.apache.http.client.config.RequestConfig;
import org.apache.http.client.methods.CloseableHttpResponse;
import org.apache.http.client.methods.HttpGet;
import org.apache.http.client.methods.HttpPost;
import org.apache.http.client.methods.HttpRequestBase;
import org.apache.http.client.protocol.HttpClientContext;
import org.apache.http.config.Registry;
import org.apache.http.config.RegistryBuilder;
import org.apache.http.config.SocketConfig;
import org.apache.http.conn.socket.ConnectionSocketFactory;
import org.apache.http.conn.ssl.NoopHostnameVerifier;
import org.apache.http.conn.ssl.SSLConnectionSocketFactory;
import org.apache.http.entity.ContentType;
import org.apache.http.entity.StringEntity;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.DefaultHttpRequestRetryHandler;
import org.apache.http.impl.client.HttpClients;
import org.apache.http.impl.conn.PoolingHttpClientConnectionManager;
import org.apache.http.protocol.HttpContext;
import org.apache.http.protocol.HttpRequestExecutor;
import org.apache.http.util.EntityUtils;

public final class ApacheSweep {
    static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "abort-timer"); t.setDaemon(true); return t;
    });

    /** The request was aborted by the 10 s timer; lib is what the library threw. */
    static final class Aborted extends Exception {
        final Exception lib;
        Aborted(Exception lib) { super(lib); this.lib = lib; }
    }

    static String outcome(Exception e) {
        if (e instanceof Aborted)
            return SweepCommon.errorOutcome(((Aborted) e).lib)
                    + " (aborted by the " + SweepCommon.REQUEST_TIMEOUT_S + " s request timeout)";
        return SweepCommon.errorOutcome(e);
    }

    /** Per-client record of the attempts of the request in progress. */
    static final class Attempts {
        final List<Integer> ports = new ArrayList<>();
        final List<String> retried = new ArrayList<>();
        synchronized void clear() { ports.clear(); retried.clear(); }
        synchronized void port(Integer p) { ports.add(p); }
        synchronized void retry(String why) { retried.add(why); }
        synchronized Integer last() { return ports.isEmpty() ? null : ports.get(ports.size() - 1); }
        synchronized int count() { return ports.size(); }
        synchronized String retriedAfter() { return String.join("; ", retried); }
    }

    public static void main(String[] args) throws Exception {
        SweepCommon c = new SweepCommon(args, "apache-hc45", " [--no-retry]");
        newClient(c, new Attempts()).close();   // load the classes before the clock matters
        c.runAll((i, firstDone) -> sweep(c, i, firstDone));
    }

    static CloseableHttpClient newClient(SweepCommon c, Attempts att) throws Exception {
        SSLConnectionSocketFactory ssl = new SSLConnectionSocketFactory(
                SweepCommon.trustAll(c.tlsVersion), new String[] {c.tlsVersion}, null,
                NoopHostnameVerifier.INSTANCE);
        Registry<ConnectionSocketFactory> reg = RegistryBuilder.<ConnectionSocketFactory>create()
                .register("https", ssl).build();
        PoolingHttpClientConnectionManager cm = new PoolingHttpClientConnectionManager(reg);
        cm.setMaxTotal(1);
        cm.setDefaultMaxPerRoute(1);
        cm.setValidateAfterInactivity(-1);   // never check a pooled connection before reuse
        cm.setDefaultSocketConfig(SocketConfig.custom()
                .setSoTimeout(SweepCommon.REQUEST_TIMEOUT_S * 1000).build());
        int ms = SweepCommon.REQUEST_TIMEOUT_S * 1000;
        @SuppressWarnings("deprecation")
        RequestConfig rc = RequestConfig.custom()
                .setConnectTimeout(ms).setSocketTimeout(ms).setConnectionRequestTimeout(ms)
                .setStaleConnectionCheckEnabled(false)
                .setRedirectsEnabled(false).build();
        HttpRequestExecutor exec = new HttpRequestExecutor() {
            @Override
            public HttpResponse execute(HttpRequest req, HttpClientConnection conn, HttpContext ctx)
                    throws IOException, HttpException {
                Integer p = null;
                if (conn instanceof HttpInetConnection) {
                    try { p = ((HttpInetConnection) conn).getLocalPort(); } catch (RuntimeException e) { /* closed */ }
                }
                att.port(p);
                return super.execute(req, conn, ctx);
            }
        };
        org.apache.http.impl.client.HttpClientBuilder b = HttpClients.custom()
                .setConnectionManager(cm)
                .setDefaultRequestConfig(rc)
                .setRequestExecutor(exec);
        if (c.retry) {
            final HttpRequestRetryHandler dflt = DefaultHttpRequestRetryHandler.INSTANCE;
            b.setRetryHandler((IOException e, int count, HttpContext ctx) -> {
                boolean again = dflt.retryRequest(e, count, ctx);
                if (again) att.retry(e.getClass().getName() + ": " + e.getMessage());
                return again;
            });
        } else {
            b.disableAutomaticRetries();
        }
        return b.build();
    }

    static int send(CloseableHttpClient hc, String method, String url, HttpClientContext ctx) throws Exception {
        HttpRequestBase req;
        if (method.equals("POST")) {
            HttpPost p = new HttpPost(url);
            p.setEntity(new StringEntity("staleconn sweep body\n", ContentType.TEXT_PLAIN));
            req = p;
        } else {
            req = new HttpGet(url);
        }
        java.util.concurrent.atomic.AtomicBoolean fired = new java.util.concurrent.atomic.AtomicBoolean();
        ScheduledFuture<?> abort = TIMER.schedule(() -> { fired.set(true); req.abort(); },
                SweepCommon.REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
        try (CloseableHttpResponse r = hc.execute(req, ctx)) {
            EntityUtils.consume(r.getEntity());   // read the whole body; the connection goes back to the pool
            return r.getStatusLine().getStatusCode();
        } catch (Exception e) {
            if (fired.get()) throw new Aborted(e);
            throw e;
        } finally {
            abort.cancel(false);
        }
    }

    static void sweep(SweepCommon c, int i, Runnable firstDone) throws Exception {
        Map<String, Object> rec = c.record(i);
        Attempts att = new Attempts();
        try (CloseableHttpClient hc = newClient(c, att)) {
            HttpClientContext ctx = HttpClientContext.create();
            String base = c.url + "/sweep/" + c.idleStrs.get(i);
            int st;
            try {
                st = send(hc, "GET", base + "/1", ctx);
            } catch (Exception e) {
                rec.put("lport", att.last());
                rec.put("outcome", "request 1 failed: " + outcome(e));
                c.write(i, rec);
                return;
            }
            long tEnd = System.nanoTime();
            rec.put("t1", SweepCommon.since());
            firstDone.run();
            Integer p1 = att.last();
            rec.put("lport", p1);
            if (st != 200) {
                rec.put("outcome", "request 1 failed: status " + st);
                c.write(i, rec);
                return;
            }
            SweepCommon.sleepUntil(tEnd, c.idles.get(i));
            rec.put("slept", Math.round((System.nanoTime() - tEnd) / 1e3) / 1e6);
            att.clear();
            String out;
            try {
                st = send(hc, c.method, base + "/2", ctx);
                out = "ok " + st;
            } catch (Exception e) {
                out = outcome(e);
            }
            Integer p2 = att.last();
            rec.put("lport2", p2);
            rec.put("reused", p1 != null && p2 != null ? (Object) p1.equals(p2) : null);
            rec.put("attempts2", att.count());
            String retried = att.retriedAfter();
            if (!retried.isEmpty())
                out += (out.startsWith("ok") ? " (retried on a new connection after " : " (after retries on new connections after ")
                        + retried + ")";
            else if (out.startsWith("ok") && p1 != null && p2 != null && !p1.equals(p2))
                out += " (on a new connection)";
            rec.put("outcome", out);
            c.write(i, rec);
        }
    }
}
