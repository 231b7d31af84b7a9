//! What a database or cache protocol's bytes say: PostgreSQL, MySQL/MariaDB and Redis
//! messages, as far as flow tracking needs them (a query from a reply, a goodbye from a
//! request, a pool's validation query, the server's own words as it closes).

/// The application protocol a flow carries, from its ports and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Protocol {
    /// Not recognised: requests are bursts of client data, answers the server's data
    /// that acknowledges them, whatever the protocol.
    #[default]
    Unknown,
    /// HTTP/1 or HTTP/2, in the clear or over TLS.
    Http,
    Postgres,
    /// MySQL or MariaDB: one wire protocol.
    Mysql,
    Redis,
}

impl Protocol {
    /// The name scripts see.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Unknown => "unknown",
            Protocol::Http => "http",
            Protocol::Postgres => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Redis => "redis",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Unknown => "TCP",
            Protocol::Http => "HTTP",
            Protocol::Postgres => "PostgreSQL",
            Protocol::Mysql => "MySQL",
            Protocol::Redis => "Redis",
        }
    }

    /// A database or cache: its requests are queries or commands, its idle timers
    /// server settings, and its pools the clients' settings.
    pub fn is_database(self) -> bool {
        matches!(self, Protocol::Postgres | Protocol::Mysql | Protocol::Redis)
    }

    /// The protocol a server port usually carries (IANA's assignments).
    pub fn by_port(port: u16) -> Protocol {
        match port {
            5432 => Protocol::Postgres,
            3306 => Protocol::Mysql,
            6379 => Protocol::Redis,
            _ => Protocol::Unknown,
        }
    }
}
