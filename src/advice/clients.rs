//! The client settings that bound how long a pooled connection sits idle, the ones that
//! keep it alive or check it before reuse, and the read timeouts that turn a hang into an
//! error, with the value staleconn recommends filled in.

use serde::Serialize;

/// One client's setting, as text to paste. The client names are the ones identify.rs
/// points at (`ClientName::settings_for`).
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub client: &'static str,
    pub setting: String,
}

/// Max-idle settings per client; `{s}` is seconds, `{ms}` milliseconds.
const MAX_IDLE: &[(&str, &str)] = &[
    (
        "Reactor Netty",
        "ConnectionProvider.builder(\"pool\").maxIdleTime(Duration.ofSeconds({s})).evictInBackground(Duration.ofSeconds(1)), or -Dreactor.netty.pool.maxIdleTime={ms}",
    ),
    (
        "Spring Cloud Gateway",
        "spring.cloud.gateway.server.webflux.httpclient.pool.max-idle-time={s}s",
    ),
    (
        "Apache HttpClient 4.5",
        "HttpClientBuilder.evictIdleConnections({s}, TimeUnit.SECONDS)",
    ),
    (
        "Apache HttpClient 5",
        "HttpClientBuilder.evictIdleConnections(TimeValue.ofSeconds({s})); 5.6+: ConnectionConfig.custom().setIdleTimeout(TimeValue.ofSeconds({s}))",
    ),
    ("OkHttp", "new ConnectionPool(5, {s}, TimeUnit.SECONDS)"),
    ("JDK HttpClient", "-Djdk.httpclient.keepalive.timeout={s}"),
    (
        "Go net/http",
        "http.Transport{IdleConnTimeout: {s} * time.Second}",
    ),
    (
        "Node undici / fetch",
        "new Agent({ keepAliveTimeout: {ms} })",
    ),
    (
        "Node http/https Agent",
        "new https.Agent({ keepAlive: true, timeout: {ms} }) (a free socket idle that long is destroyed)",
    ),
    (
        "Node agentkeepalive",
        "new Agent({ freeSocketTimeout: {ms} })",
    ),
    ("Python aiohttp", "TCPConnector(keepalive_timeout={s})"),
    ("Python httpx", "httpx.Limits(keepalive_expiry={s})"),
    (
        "Python requests / urllib3",
        "no idle limit exists; urllib3 drops a connection whose FIN already arrived, so add Retry for idempotent requests",
    ),
    (
        "Python http.client",
        "no pool and no idle limit: close() the HTTPConnection and open a new one when it has been idle {s} s or more, and retry idempotent requests once",
    ),
    (
        "curl / libcurl",
        "curl_easy_setopt(curl, CURLOPT_MAXAGE_CONN, {s}L)",
    ),
    (
        ".NET",
        "SocketsHttpHandler.PooledConnectionIdleTimeout = TimeSpan.FromSeconds({s})",
    ),
];

/// Read (response) timeouts per client, so a request nobody answers fails instead of
/// hanging; `{s}` is seconds, `{ms}` milliseconds. The last is the kernel's own bound.
const READ_TIMEOUT: &[(&str, &str)] = &[
    (
        "Reactor Netty",
        "HttpClient.create().responseTimeout(Duration.ofSeconds({s}))",
    ),
    (
        "Spring Cloud Gateway",
        "spring.cloud.gateway.server.webflux.httpclient.response-timeout={s}s",
    ),
    (
        "Apache HttpClient 4.5",
        "RequestConfig.custom().setSocketTimeout({ms})",
    ),
    (
        "Apache HttpClient 5",
        "RequestConfig.custom().setResponseTimeout(Timeout.ofSeconds({s}))",
    ),
    (
        "OkHttp",
        "new OkHttpClient.Builder().readTimeout({s}, TimeUnit.SECONDS) (default 10 s)",
    ),
    (
        "JDK HttpClient",
        "HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds({s}))",
    ),
    (
        "Go net/http",
        "http.Transport{ResponseHeaderTimeout: {s} * time.Second}, or http.Client{Timeout: ...} for the whole exchange",
    ),
    (
        "Node undici / fetch",
        "new Agent({ headersTimeout: {ms}, bodyTimeout: {ms} }) (defaults 300 s)",
    ),
    (
        "Node http/https Agent",
        "http.request(url, { timeout: {ms} }) and destroy the request on 'timeout'",
    ),
    ("Python aiohttp", "ClientTimeout(sock_read={s})"),
    ("Python httpx", "httpx.Timeout(5.0, read={s})"),
    (
        "Python requests / urllib3",
        "requests.get(url, timeout=(5, {s}))",
    ),
    (
        "Python http.client",
        "http.client.HTTPConnection(host, timeout={s}), or HTTPSConnection",
    ),
    (
        "curl / libcurl",
        "curl_easy_setopt(curl, CURLOPT_TIMEOUT, {s}L)",
    ),
    (
        ".NET",
        "HttpClient.Timeout = TimeSpan.FromSeconds({s}) (default 100 s)",
    ),
    (
        "Linux, any client",
        "setsockopt(IPPROTO_TCP, TCP_USER_TIMEOUT, {ms}): the kernel fails a connection whose data stays unacknowledged that long, whatever the client library",
    ),
];

/// Where a pool can check a connection before reusing it (catches a FIN that arrived).
pub const CHECK_BEFORE_REUSE: &str = "Apache HttpClient: validateAfterInactivity (4.5: PoolingHttpClientConnectionManager.setValidateAfterInactivity; 5: ConnectionConfig); Python: use urllib3/requests instead of bare http.client, which reuses without checking; a max idle below the server's timeout avoids both cases";

/// TCP keepalive, for middleboxes that count keepalive probes as traffic.
pub const TCP_KEEPALIVE: &str = "SO_KEEPALIVE with TCP_KEEPIDLE={s} (Go: net.Dialer.KeepAlive = {s}s; Reactor Netty: option(ChannelOption.SO_KEEPALIVE, true) and EpollChannelOption.TCP_KEEPIDLE; Linux default 7200 s never helps)";

fn fill(template: &str, seconds: u64) -> String {
    template
        .replace("{ms}", &(seconds * 1000).to_string())
        .replace("{s}", &seconds.to_string())
}

/// Every client's max-idle setting for `seconds`.
pub fn max_idle_settings(seconds: u64) -> Vec<Setting> {
    MAX_IDLE
        .iter()
        .map(|(client, template)| Setting {
            client,
            setting: fill(template, seconds),
        })
        .collect()
}

/// One client's max-idle setting for `seconds`, if it has one listed.
pub fn max_idle_setting(client: &str, seconds: u64) -> Option<Setting> {
    one(MAX_IDLE, client, seconds)
}

/// One client's read timeout for `seconds`, if it has one listed.
pub fn read_timeout_setting(client: &str, seconds: u64) -> Option<Setting> {
    one(READ_TIMEOUT, client, seconds)
}

fn one(table: &[(&'static str, &str)], client: &str, seconds: u64) -> Option<Setting> {
    table
        .iter()
        .find(|(name, _)| *name == client)
        .map(|(client, template)| Setting {
            client,
            setting: fill(template, seconds),
        })
}

pub fn tcp_keepalive(seconds: u64) -> String {
    fill(TCP_KEEPALIVE, seconds)
}

/// Every client's read timeout for `seconds`, and TCP_USER_TIMEOUT.
pub fn read_timeout_settings(seconds: u64) -> Vec<Setting> {
    READ_TIMEOUT
        .iter()
        .map(|(client, template)| Setting {
            client,
            setting: fill(template, seconds),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_filled_in() {
        let settings = max_idle_settings(4);
        let netty = settings
            .iter()
            .find(|s| s.client == "Reactor Netty")
            .unwrap();
        assert!(netty.setting.contains("Duration.ofSeconds(4)"));
        assert!(netty.setting.contains("maxIdleTime=4000"));
        assert!(
            settings
                .iter()
                .any(|s| s.setting == "http.Transport{IdleConnTimeout: 4 * time.Second}")
        );
        assert!(tcp_keepalive(175).starts_with("SO_KEEPALIVE with TCP_KEEPIDLE=175"));
        let read = read_timeout_settings(10);
        assert!(read.iter().any(|s| {
            s.client == "OkHttp"
                && s.setting
                    .starts_with("new OkHttpClient.Builder().readTimeout(10, ")
        }));
        assert!(
            read.iter()
                .any(|s| s.setting.contains("TCP_USER_TIMEOUT, 10000)"))
        );
    }
}
