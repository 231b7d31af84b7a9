#!/bin/bash
# staleconn test lab, ClientHello fingerprints of clients left at their default TLS
# settings (the race labs pin each client to one TLS version, which changes its
# ClientHello): one HTTPS request from each client below, each to its own port of an
# `openssl s_server -www`, all on the loopback of one network namespace. Only the
# ClientHello matters here; what the clients make of s_server's answer does not.
#
# REQUIREMENTS (Debian 12): root; iproute2 tcpdump openssl curl python3 (requests,
#   urllib3) nodejs golang default-jdk libhttpclient-java libokhttp-java. No network
#   access is needed.
#
# WHAT IT MAKES: testdata/lab/fingerprints/defaults.pcap (the client side of each
#   handshake), testdata/lab/fingerprints/clients.tsv (server port, client, version),
#   and prints each ClientHello's JA4 (lab/ja4.py). src/identify.rs's FINGERPRINTS
#   table lists what it printed; tests/software.rs checks each port's flow is named so.
#
# Usage: sudo testdata/lab/fingerprints.sh    (LAB_OUT=dir writes elsewhere; ~1 min)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fingerprints.sh: must be run as root" >&2; exit 1; }

LAB=$(cd "$(dirname "$0")" && pwd)
OUT=${LAB_OUT:-$LAB/fingerprints}
NS_C=skc-fp NS_R= NS_S=
WORK=$(mktemp -d /tmp/staleconn-fingerprints.XXXXXX)
. "$LAB/common.sh"   # PIDS, log, cleanup on exit (namespaces, WORK), wait_for, stop_pid, need
need fingerprints.sh ip tcpdump openssl curl python3 node go javac java
ADDR=198.18.99.1
mkdir -p "$OUT"

log "namespace $NS_C: loopback only, $ADDR"
ip netns del $NS_C 2>/dev/null || true
ip netns add $NS_C
ip -n $NS_C link set lo up
ip -n $NS_C addr add $ADDR/32 dev lo
N() { ip netns exec $NS_C "$@"; }

log "building the Go and Java clients"
cat > "$WORK/get.go" <<'EOF'
package main

import (
	"crypto/tls"
	"net/http"
	"os"
)

func main() {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	resp, err := (&http.Client{Transport: t}).Get(os.Args[1])
	if err == nil {
		resp.Body.Close()
	}
}
EOF
(cd "$WORK" && GO111MODULE=off go build -o get-go get.go)
mkdir -p "$WORK/java"
cat > "$WORK/java/JdkGet.java" <<'EOF'
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public class JdkGet {
    static SSLContext trustAll() throws Exception {
        TrustManager[] all = { new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        } };
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, all, null);
        return ctx;
    }
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder().sslContext(trustAll()).build();
        try {
            client.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.discarding());
        } catch (Exception e) {
            System.err.println(e);
        }
    }
}
EOF
cat > "$WORK/java/ApacheGet.java" <<'EOF'
import org.apache.http.client.methods.HttpGet;
import org.apache.http.conn.ssl.NoopHostnameVerifier;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClients;
import org.apache.http.ssl.SSLContextBuilder;

public class ApacheGet {
    public static void main(String[] args) throws Exception {
        CloseableHttpClient client = HttpClients.custom()
            .setSSLContext(new SSLContextBuilder().loadTrustMaterial(null, (chain, type) -> true).build())
            .setSSLHostnameVerifier(NoopHostnameVerifier.INSTANCE)
            .build();
        try {
            client.execute(new HttpGet(args[0])).close();
        } catch (Exception e) {
            System.err.println(e);
        }
    }
}
EOF
cat > "$WORK/java/OkGet.java" <<'EOF'
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import okhttp3.OkHttpClient;
import okhttp3.Request;

public class OkGet {
    public static void main(String[] args) throws Exception {
        X509TrustManager all = new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        };
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] { all }, null);
        OkHttpClient client = new OkHttpClient.Builder()
            .sslSocketFactory(ctx.getSocketFactory(), all)
            .hostnameVerifier((host, session) -> true)
            .build();
        try {
            client.newCall(new Request.Builder().url(args[0]).build()).execute().close();
        } catch (Exception e) {
            System.err.println(e);
        }
        client.dispatcher().executorService().shutdown();
        client.connectionPool().evictAll();
    }
}
EOF
JARS=/usr/share/java/httpclient.jar:/usr/share/java/httpcore.jar:/usr/share/java/commons-logging.jar
OKJARS=/usr/share/java/okhttp.jar:/usr/share/java/okio.jar
javac -d "$WORK/java" -cp "$JARS:$OKJARS" "$WORK/java/JdkGet.java" "$WORK/java/ApacheGet.java" \
    "$WORK/java/OkGet.java"

log "certificate, one s_server per client"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=lab \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
# port  client  what it runs (in the namespace, bounded to 20 s)
CLIENTS=(
    "18441|curl|curl -sk -o /dev/null https://$ADDR:18441/"
    "18442|Python http.client|python3 -c 'import http.client,ssl; c=ssl.create_default_context(); c.check_hostname=False; c.verify_mode=ssl.CERT_NONE; h=http.client.HTTPSConnection(\"$ADDR\",18442,context=c); h.request(\"GET\",\"/\"); h.getresponse().read()'"
    "18443|Python requests|python3 -W ignore -c 'import requests; requests.get(\"https://$ADDR:18443/\", verify=False)'"
    "18444|Node.js https.Agent|node -e 'const https=require(\"https\"); https.get({host:\"$ADDR\",port:18444,rejectUnauthorized:false,agent:new https.Agent({keepAlive:true})},r=>{r.resume();r.on(\"end\",()=>process.exit(0))}).on(\"error\",()=>process.exit(0))'"
    "18445|Node.js fetch|env NODE_TLS_REJECT_UNAUTHORIZED=0 node --no-warnings -e 'fetch(\"https://$ADDR:18445/\").then(r=>r.text()).catch(()=>{}).finally(()=>process.exit(0))'"
    "18446|Go net/http|$WORK/get-go https://$ADDR:18446/"
    "18447|JDK HttpClient|java -cp $WORK/java JdkGet https://$ADDR:18447/"
    "18448|Apache HttpClient 4.5|java -cp $WORK/java:$JARS ApacheGet https://$ADDR:18448/"
    "18449|OkHttp|java -cp $WORK/java:$OKJARS OkGet https://$ADDR:18449/"
)
for c in "${CLIENTS[@]}"; do
    port=${c%%|*}
    ip netns exec $NS_C timeout 60 openssl s_server -accept "$ADDR:$port" -cert "$WORK/cert.pem" \
        -key "$WORK/key.pem" -www -quiet > /dev/null 2>&1 &
    PIDS+=($!)
done
listening() { N ss -ltn | grep -q "$ADDR:18449"; }
wait_for listening || { log "s_server did not start"; exit 1; }

# Not through N: a function in the background is a subshell, and $! would be its PID, not
# tcpdump's.
ip netns exec $NS_C tcpdump -U -n -Z root -i lo -w "$WORK/defaults.pcap" "tcp portrange 18441-18449" \
    2> "$WORK/tcpdump.log" &
PIDS+=($!); TCPDUMP=$!
sleep 1
{
    echo -e "# port\tclient\tversion (testdata/lab/fingerprints.sh, $(date -u +%F))"
    for c in "${CLIENTS[@]}"; do
        port=${c%%|*}; rest=${c#*|}; name=${rest%%|*}; cmd=${rest#*|}
        log "$name -> :$port"
        N timeout 20 bash -c "$cmd" > /dev/null 2>&1 || true
        case $name in
            curl) v=$(curl --version | head -1) ;;
            Python*) v="Python $(python3 -c 'import sys,ssl,requests,urllib3; print(sys.version.split()[0], ssl.OPENSSL_VERSION, "requests", requests.__version__, "urllib3", urllib3.__version__)')" ;;
            Node*) v="Node.js $(node --version) OpenSSL $(node -p process.versions.openssl)" ;;
            Go*) v=$(go version) ;;
            JDK*) v=$(java -version 2>&1 | head -1) ;;
            Apache*) v="$(ls /usr/share/java/httpclient-4*.jar | head -1 | xargs basename) on $(java -version 2>&1 | head -1)" ;;
            OkHttp) v="$(ls /usr/share/java/okhttp-3*.jar | head -1 | xargs basename) on $(java -version 2>&1 | head -1)" ;;
        esac
        echo -e "$port\t$name\t$v"
    done
} > "$OUT/clients.tsv"
sleep 1
stop_pid "$TCPDUMP"
cp "$WORK/defaults.pcap" "$OUT/defaults.pcap"
python3 "$LAB/ja4.py" "$OUT/defaults.pcap"
log "done: $OUT"
