// Keep-alive race sweep client for the staleconn lab: the JDK's
// java.net.http.HttpClient, HTTP/1.1 forced, trust-all TLS, TLS version pinned.
//
//   java -cp DIR JdkSweep --url https://HOST:PORT --idles 4.90,4.94 --log FILE
//        [--client-name NAME] [--tls12|--tls13] [--method GET|POST]
//
// One HttpClient (its own connection pool) per idle value.  The API does not
// expose the connection, so lport, lport2 and reused are null; the lab joins
// by URL path (/sweep/IDLE/1, /sweep/IDLE/2) through the server's access log.
// See ../README.md.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import javax.net.ssl.SSLParameters;

public final class JdkSweep {
    public static void main(String[] args) throws Exception {
        // The trust manager below is an X509ExtendedTrustManager that checks
        // nothing, so no endpoint identification happens; this switches off the
        // HttpClient's own hostname check too (read when the client classes load).
        System.setProperty("jdk.internal.httpclient.disableHostnameVerification", "true");
        SweepCommon c = new SweepCommon(args, "jdk-httpclient", "");
        if (!c.retry) { System.err.println("--no-retry is for ApacheSweep only"); System.exit(2); }
        newClient(c);   // load the client and TLS classes before the clock matters
        c.runAll((i, firstDone) -> sweep(c, i, firstDone));
    }

    static HttpClient newClient(SweepCommon c) throws Exception {
        SSLParameters p = new SSLParameters();
        p.setProtocols(new String[] {c.tlsVersion});
        return HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .sslContext(SweepCommon.trustAll(c.tlsVersion))
                .sslParameters(p)
                .connectTimeout(Duration.ofSeconds(SweepCommon.REQUEST_TIMEOUT_S))
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    static HttpResponse<byte[]> send(HttpClient hc, String method, String url) throws Throwable {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url))
                .timeout(Duration.ofSeconds(SweepCommon.REQUEST_TIMEOUT_S));
        if (method.equals("POST"))
            b.header("Content-Type", "text/plain")
             .POST(HttpRequest.BodyPublishers.ofString("staleconn sweep body\n"));
        else
            b.GET();
        // sendAsync + bounded get: the request timeout covers the headers only,
        // this bounds the body too.
        try {
            return hc.sendAsync(b.build(), HttpResponse.BodyHandlers.ofByteArray())
                     .get(SweepCommon.REQUEST_TIMEOUT_S + 1, java.util.concurrent.TimeUnit.SECONDS);
        } catch (Throwable e) {
            throw SweepCommon.unwrap(e);
        }
    }

    static void sweep(SweepCommon c, int i, Runnable firstDone) throws Exception {
        Map<String, Object> rec = c.record(i);
        HttpClient hc = newClient(c);
        String base = c.url + "/sweep/" + c.idleStrs.get(i);
        HttpResponse<byte[]> r;
        try {
            r = send(hc, "GET", base + "/1");
        } catch (Throwable e) {
            rec.put("outcome", "request 1 failed: " + SweepCommon.errorOutcome(e));
            c.write(i, rec);
            return;
        }
        long tEnd = System.nanoTime();
        rec.put("t1", SweepCommon.since());
        firstDone.run();
        if (r.statusCode() != 200) {
            rec.put("outcome", "request 1 failed: status " + r.statusCode());
            c.write(i, rec);
            return;
        }
        SweepCommon.sleepUntil(tEnd, c.idles.get(i));
        rec.put("slept", Math.round((System.nanoTime() - tEnd) / 1e3) / 1e6);
        try {
            r = send(hc, c.method, base + "/2");
            rec.put("outcome", "ok " + r.statusCode());
        } catch (Throwable e) {
            rec.put("outcome", SweepCommon.errorOutcome(e));
        }
        c.write(i, rec);
    }
}
