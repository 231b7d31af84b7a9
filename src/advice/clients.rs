//! The client settings that bound how long a pooled connection sits idle, and the ones that
//! keep it alive or check it before reuse, with the value staleconn recommends filled in.

use serde::Serialize;

/// One client's setting, as text to paste.
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
        ".NET",
        "SocketsHttpHandler.PooledConnectionIdleTimeout = TimeSpan.FromSeconds({s})",
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

pub fn tcp_keepalive(seconds: u64) -> String {
    fill(TCP_KEEPALIVE, seconds)
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
    }
}
