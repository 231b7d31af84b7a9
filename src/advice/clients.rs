//! The client settings that bound how long a pooled connection sits idle, the ones that
//! keep it alive or check it before reuse, and the read timeouts that turn a hang into an
//! error, with the value staleconn recommends filled in: for HTTP clients, and for the
//! database and cache pools and drivers (with the servers' own settings) per protocol.

use serde::Serialize;

use crate::flow::Protocol;

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

const SQL: &[Protocol] = &[Protocol::Postgres, Protocol::Mysql];
const POSTGRES: &[Protocol] = &[Protocol::Postgres];
const MYSQL: &[Protocol] = &[Protocol::Mysql];
const REDIS: &[Protocol] = &[Protocol::Redis];

/// A database or cache client's setting: its name, the protocols it speaks, the template.
type DbRow = (&'static str, &'static [Protocol], &'static str);

/// Pool max idle (or max lifetime) per database or cache client, below the server's idle
/// timeout or a middlebox's timer; `{s}` is seconds, `{ms}` milliseconds. The JDBC drivers
/// pool nothing themselves (HikariCP does), so identify.rs sends them to HikariCP first.
const DB_MAX_IDLE: &[DbRow] = &[
    (
        "HikariCP",
        SQL,
        "maxLifetime={ms} (spring.datasource.hikari.max-lifetime={ms}); idleTimeout={ms} retires only connections above minimumIdle; or keepaliveTime={ms} so an idle connection is validated before the timer runs out (HikariCP's minimums: maxLifetime and keepaliveTime 30 s, idleTimeout 10 s)",
    ),
    (
        "Go database/sql",
        SQL,
        "db.SetConnMaxIdleTime({s} * time.Second), and db.SetConnMaxLifetime at most a little longer",
    ),
    (
        "SQLAlchemy",
        SQL,
        "create_engine(url, pool_recycle={s}, pool_pre_ping=True)",
    ),
    (
        "psycopg pool",
        POSTGRES,
        "psycopg_pool.ConnectionPool(conninfo, max_lifetime={s}, max_idle={s}) (max_idle only shrinks the pool above min_size; check=ConnectionPool.check_connection tests a connection before lending it)",
    ),
    (
        "PyMySQL",
        MYSQL,
        "conn.ping(reconnect=True) before reusing a connection idle {s} s or more; pooled through SQLAlchemy, pool_recycle={s}",
    ),
    (
        "MariaDB Connector/J",
        MYSQL,
        "behind HikariCP, its maxLifetime={ms}; MariaDB's own pool (pool=true): maxIdleTime={s} in the JDBC URL",
    ),
    (
        "redis-py",
        REDIS,
        "redis.Redis(..., health_check_interval={s}) (a PING before a command on a connection idle that long)",
    ),
    (
        "Lettuce",
        REDIS,
        "one long-lived connection that reconnects by itself: keep it under the timer with SocketOptions.builder().keepAlive(true) or a PING every {s} s; pooled (ConnectionPoolSupport): GenericObjectPoolConfig.setMinEvictableIdleTime(Duration.ofSeconds({s})) with setTestWhileIdle(true)",
    ),
    (
        "Jedis",
        REDIS,
        "JedisPoolConfig: setMinEvictableIdleTime(Duration.ofSeconds({s})), setTimeBetweenEvictionRuns(Duration.ofSeconds(1)), setTestWhileIdle(true)",
    ),
];

/// TCP keepalive per database or cache client, for a middlebox that counts probes as
/// traffic; `{s}` is the keepalive idle in seconds.
const DB_TCP_KEEPALIVE: &[DbRow] = &[
    (
        "PostgreSQL JDBC (pgjdbc)",
        POSTGRES,
        "tcpKeepAlive=true in the JDBC URL, with the OS's net.ipv4.tcp_keepalive_time={s} (Java sets no keepalive idle of its own)",
    ),
    (
        "psycopg / libpq",
        POSTGRES,
        "keepalives=1 keepalives_idle={s} in the connection string",
    ),
    (
        "MariaDB Connector/J",
        MYSQL,
        "tcpKeepAlive (on by default in 3.x) and tcpKeepIdle={s} in the JDBC URL",
    ),
    (
        "MySQL Connector/J",
        MYSQL,
        "tcpKeepAlive=true (its default), with the OS's net.ipv4.tcp_keepalive_time={s}",
    ),
    (
        "Go database/sql",
        SQL,
        "the driver's net.Dialer{KeepAlive: {s} * time.Second} (Go probes after 15 s by default)",
    ),
    (
        "redis-py",
        REDIS,
        "redis.Redis(..., socket_keepalive=True, socket_keepalive_options={socket.TCP_KEEPIDLE: {s}})",
    ),
    (
        "Lettuce",
        REDIS,
        "SocketOptions.builder().keepAlive(SocketOptions.KeepAliveOptions.builder().enable().idle(Duration.ofSeconds({s})).build())",
    ),
    (
        "Jedis",
        REDIS,
        "DefaultJedisClientConfig.builder().socketFactory(...) setting SO_KEEPALIVE, with the OS's net.ipv4.tcp_keepalive_time={s}",
    ),
];

/// Read (socket) timeouts per database or cache client, so a query nobody answers fails
/// instead of hanging; `{s}` is seconds, `{ms}` milliseconds.
const DB_READ_TIMEOUT: &[DbRow] = &[
    (
        "PostgreSQL JDBC (pgjdbc)",
        POSTGRES,
        "socketTimeout={s} in the JDBC URL (seconds)",
    ),
    (
        "psycopg / libpq",
        POSTGRES,
        "tcp_user_timeout={ms} in the connection string (libpq has no read timeout)",
    ),
    (
        "MariaDB Connector/J",
        MYSQL,
        "socketTimeout={ms} in the JDBC URL",
    ),
    (
        "MySQL Connector/J",
        MYSQL,
        "socketTimeout={ms} in the JDBC URL",
    ),
    ("PyMySQL", MYSQL, "pymysql.connect(..., read_timeout={s})"),
    (
        "Go database/sql",
        SQL,
        "a context.WithTimeout of {s} s on each query (go-sql-driver/mysql: readTimeout={s}s in the DSN)",
    ),
    ("redis-py", REDIS, "redis.Redis(..., socket_timeout={s})"),
    (
        "Lettuce",
        REDIS,
        "RedisURI.builder().withTimeout(Duration.ofSeconds({s})) (command timeout, default 60 s)",
    ),
    (
        "Jedis",
        REDIS,
        "new JedisPool(config, host, port, {ms}) (the socket timeout, default 2000 ms)",
    ),
];

/// Where a database pool checks a connection before lending it (catches a close that
/// already arrived).
pub const DB_CHECK_BEFORE_REUSE: &str = "SQLAlchemy: pool_pre_ping=True; psycopg_pool: check=ConnectionPool.check_connection; redis-py: health_check_interval; HikariCP validates a connection idle over 500 ms by itself (the close it meets costs a new connection, not an error); a max idle below the server's idle timeout avoids both cases";

/// The server side of a database or cache protocol: the idle timers that close pooled
/// connections and the keepalive that keeps a middlebox's entry alive. `keepalive_idle`
/// fills in the keepalive where a middlebox's timer was measured.
pub fn server_settings(protocol: Protocol, keepalive_idle: Option<u64>) -> Vec<Setting> {
    let keepalive = |setting: &str, default: &str| match keepalive_idle {
        Some(k) => format!(
            "{setting}{k} makes the server's keepalive probes keep a middlebox's entry alive ({default})"
        ),
        None => format!("{setting}N sets the server's keepalive probes ({default})"),
    };
    let rows: Vec<(&'static str, String)> = match protocol {
        Protocol::Postgres => vec![
            (
                "PostgreSQL server",
                format!(
                    "idle_session_timeout (off by default) closes sessions idle that long, pooled ones too: leave it 0 for pooled clients or keep their max idle below it; idle_in_transaction_session_timeout (off by default) the same inside a transaction; {}",
                    keepalive("tcp_keepalives_idle=", "0, the default, leaves the OS's 7200 s")
                ),
            ),
            (
                "PgBouncer",
                "client_idle_timeout (0, off, by default) closes the application's idle connections: keep the pool's max idle below it; server_idle_timeout (600 s) closes only PgBouncer's own connections to the server, which the application never sees".to_string(),
            ),
        ],
        Protocol::Mysql => vec![(
            "MySQL / MariaDB server",
            "wait_timeout (28800 s; interactive_timeout for interactive clients) closes a connection idle that long: keep the pool's max idle below it (SELECT @@wait_timeout shows the session's), or raise it".to_string(),
        )],
        Protocol::Redis => vec![(
            "Redis server",
            format!(
                "timeout (0, off, by default) closes a client idle that long, checked in whole seconds (hz 10): keep the pool's max idle below it; {}",
                keepalive("tcp-keepalive ", "default 300 s")
            ),
        )],
        Protocol::Unknown | Protocol::Http => Vec::new(),
    };
    rows.into_iter()
        .map(|(client, setting)| Setting { client, setting })
        .collect()
}

fn db_all(table: &[DbRow], protocol: Protocol, seconds: u64) -> Vec<Setting> {
    table
        .iter()
        .filter(|(_, speaks, _)| speaks.contains(&protocol))
        .map(|(client, _, template)| Setting {
            client,
            setting: fill(template, seconds),
        })
        .collect()
}

fn db_one(table: &[DbRow], client: &str, seconds: u64) -> Option<Setting> {
    table
        .iter()
        .find(|(name, _, _)| *name == client)
        .map(|(client, _, template)| Setting {
            client,
            setting: fill(template, seconds),
        })
}

/// Every database or cache client's max-idle setting for `seconds`, for `protocol`.
pub fn db_max_idle_settings(protocol: Protocol, seconds: u64) -> Vec<Setting> {
    db_all(DB_MAX_IDLE, protocol, seconds)
}

/// One database or cache client's max-idle setting, if it has one listed.
pub fn db_max_idle_setting(client: &str, seconds: u64) -> Option<Setting> {
    db_one(DB_MAX_IDLE, client, seconds)
}

/// Every database or cache client's TCP keepalive for an idle of `seconds`.
pub fn db_tcp_keepalive_settings(protocol: Protocol, seconds: u64) -> Vec<Setting> {
    db_all(DB_TCP_KEEPALIVE, protocol, seconds)
}

/// Every database or cache client's read timeout for `seconds`, and TCP_USER_TIMEOUT.
pub fn db_read_timeout_settings(protocol: Protocol, seconds: u64) -> Vec<Setting> {
    let mut settings = db_all(DB_READ_TIMEOUT, protocol, seconds);
    settings.extend(one(READ_TIMEOUT, "Linux, any client", seconds));
    settings
}

/// One database or cache client's read timeout, if it has one listed.
pub fn db_read_timeout_setting(client: &str, seconds: u64) -> Option<Setting> {
    db_one(DB_READ_TIMEOUT, client, seconds)
}

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

    /// Every client name identify.rs hands out for a database flow finds its settings here.
    #[test]
    fn database_clients_named_by_identify_have_settings() {
        for client in [
            "PostgreSQL JDBC (pgjdbc)",
            "MariaDB Connector/J",
            "MySQL Connector/J",
            "PyMySQL",
            "Go database/sql",
            "redis-py",
            "Lettuce",
            "Jedis",
        ] {
            let wanted = crate::identify::settings_for(client);
            assert!(
                !wanted.is_empty(),
                "{client}: identify.rs lists no settings"
            );
            assert!(
                wanted.iter().any(|w| db_max_idle_setting(w, 4).is_some()),
                "{client}: no max idle among {wanted:?}"
            );
        }
    }

    #[test]
    fn database_values_are_filled_in_per_protocol() {
        let pg = db_max_idle_settings(Protocol::Postgres, 4);
        let hikari = pg.iter().find(|s| s.client == "HikariCP").unwrap();
        assert!(hikari.setting.starts_with("maxLifetime=4000 "));
        assert!(pg.iter().any(|s| s.setting.contains("pool_recycle=4,")));
        assert!(
            !pg.iter()
                .any(|s| s.client == "redis-py" || s.client == "PyMySQL")
        );
        let redis = db_max_idle_settings(Protocol::Redis, 9);
        assert!(
            redis
                .iter()
                .any(|s| s.setting.contains("health_check_interval=9)"))
        );
        assert!(!redis.iter().any(|s| s.client == "HikariCP"));
        let keepalive = db_tcp_keepalive_settings(Protocol::Postgres, 175);
        assert!(
            keepalive
                .iter()
                .any(|s| s.setting.starts_with("tcpKeepAlive=true")
                    && s.setting.contains("tcp_keepalive_time=175"))
        );
        let read = db_read_timeout_settings(Protocol::Mysql, 10);
        assert!(
            read.iter()
                .any(|s| s.setting == "pymysql.connect(..., read_timeout=10)")
        );
        assert!(
            read.iter()
                .any(|s| s.setting.contains("TCP_USER_TIMEOUT, 10000)"))
        );
        let server = server_settings(Protocol::Postgres, Some(150));
        assert!(server[0].setting.contains("tcp_keepalives_idle=150"));
        assert!(server.iter().any(|s| s.client == "PgBouncer"));
        assert!(server_settings(Protocol::Http, None).is_empty());
    }
}
