//! Command-line arguments (clap) and their validation into a `Config`. Stages get parts of
//! the `Config`, never clap types.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser, ValueEnum, ValueHint};

use crate::Settings;
use crate::capture::LiveOptions;
use crate::detect::Thresholds;
use crate::flow::DEFAULT_MAX_FLOWS;
use crate::metrics::{self, MetricsConfig};
use crate::report::Output;
use crate::target::Target;

/// Snapshot length for live capture: the largest link, IP and TCP headers (SLL2 20 +
/// IPv6 40 + TCP 60) plus room for TLS record headers and an HTTP request or status line
/// and the headers that follow it.
pub const DEFAULT_SNAPLEN: i32 = 512;

/// Examples, each what it does and the command: `--help` and the man page both list them.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Analyse a saved capture; flagged flows are listed with their evidence",
        "staleconn -r dump.pcap",
    ),
    (
        "Only one server's flows, with a BPF filter as for tcpdump",
        "staleconn -r dump.pcap --target 10.0.3.7:443 tcp port 443",
    ),
    (
        "Rotated files (tcpdump -C or -G) read as one capture",
        "staleconn -r 'cap-*.pcap'",
    ),
    (
        "Each flagged flow's last packets, numbered as in Wireshark, and every client library's setting",
        "staleconn -r dump.pcap --explain",
    ),
    (
        "tcpdump captures, staleconn reads standard input",
        "tcpdump -i any -U -w - host 10.0.3.7 | staleconn -r -",
    ),
    (
        "Capture live, keep the packets, and drop root once the device is open",
        "sudo staleconn -i any -w evidence.pcap --target 10.0.3.7:443",
    ),
    (
        "JSON for scripts: the flagged flows' verdicts",
        "staleconn -r dump.pcap --format json | jq '.flows[] | select(.flagged) | .verdict'",
    ),
];

/// What each exit status means: `-h`, `--help` and the man page all say it.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "no flow flagged"),
    ("1", "some flows flagged"),
    ("2", "error (bad input, bad option)"),
];

/// Said after the exit statuses in `--help` and the man page.
pub const EXIT_STATUS_NOTE: &str = "Output cut short by a closed pipe (| head) is not an error.";

/// `--help` and the man page: what staleconn finds, before the options.
pub const LONG_ABOUT: &str = "\
Reads a packet capture (pcap or pcapng, several rotated files, standard input) or a live \
interface, and tells, flow by flow, why requests on pooled HTTP keep-alive connections died, \
with the measured figures that prove it and what to change.

keepalive_race: the server closed an idle keep-alive connection (TLS close_notify, FIN) as \
the client reused it; the request got no response (Reactor Netty 'Connection prematurely \
closed BEFORE response', Apache HttpClient NoHttpResponseException, Node 'socket hang up'). \
Fix: a client max idle time shorter than the server's keep-alive timeout, which is measured.

nat_idle_reset: a NAT, load balancer or firewall forgot a connection that was idle too long \
(AWS NAT Gateway: 350 s) and answered the next request with RST ('Connection reset'). Fix: a \
client max idle time, or TCP keepalive, shorter than the middlebox's idle timeout.";

/// `-h`: the exit statuses, and where the rest is.
fn after_short_help() -> String {
    let statuses: Vec<String> = EXIT_STATUS
        .iter()
        .map(|(code, meaning)| format!("{code} {meaning}"))
        .collect();
    format!(
        "Exit status: {}.\n'staleconn --help' says more, with examples; so does 'man staleconn'.",
        statuses.join(", ")
    )
}

/// `--help`: the examples and the exit statuses.
fn after_long_help() -> String {
    let mut text = String::from("Examples:\n");
    for (what, command) in EXAMPLES {
        text.push_str(&format!("  {what}:\n    {command}\n"));
    }
    text.push_str("\nExit status:\n");
    for (code, meaning) in EXIT_STATUS {
        text.push_str(&format!("  {code}  {meaning}\n"));
    }
    text.push_str(EXIT_STATUS_NOTE);
    text
}

#[derive(Debug, Parser)]
#[command(
    name = "staleconn",
    version = env!("STALECONN_VERSION"),
    about = "Reads a packet capture and tells, flow by flow, why requests on pooled HTTP keep-alive connections died",
    long_about = LONG_ABOUT,
    group(ArgGroup::new("input").required(true).args(["read", "interface", "list_interfaces", "generate"])),
    after_help = after_short_help(),
    after_long_help = after_long_help(),
)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; `-` is standard input). Repeat it, or give
    /// a glob (quoted, or as the shell expands it), to read rotated files as one capture
    ///
    /// Rotated files (tcpdump -C or -G) are merged by timestamp: a flow that spans two files
    /// is one flow, and frames are numbered as in `mergecap -w merged.pcap`. Reading files
    /// needs no privileges.
    #[arg(short = 'r', value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub read: Vec<String>,

    /// Capture live on IFACE (`any` for all interfaces)
    ///
    /// Needs root, or the capabilities cap_net_raw and cap_net_admin on the binary. Flagged
    /// flows are printed as they happen; Ctrl-C, SIGTERM, -c or --duration end the capture
    /// with the whole table.
    #[arg(short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,

    /// List the interfaces that can be captured on, and exit
    #[arg(short = 'D')]
    pub list_interfaces: bool,

    /// Live: bytes kept of each packet
    #[arg(short = 's', value_name = "SNAPLEN", default_value_t = DEFAULT_SNAPLEN)]
    pub snaplen: i32,

    /// Live: do not put the interface into promiscuous mode (the default)
    #[arg(short = 'p', conflicts_with = "promisc")]
    pub no_promisc: bool,

    /// Live: put the interface into promiscuous mode
    #[arg(long)]
    pub promisc: bool,

    /// Stop after COUNT packets
    #[arg(short = 'c', value_name = "COUNT")]
    pub count: Option<u64>,

    /// Live: stop after this long (e.g. 30s, 40m, 2h)
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Live: also write the captured packets to FILE (pcap), as tcpdump -w does
    #[arg(short = 'w', value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub write: Option<PathBuf>,

    /// Live: after opening the device, run as USER (default when root: nobody; `-Z root` keeps root)
    ///
    /// Everything parsed after the device is open comes from the network, so a process
    /// started as root becomes USER once the device and the output files (-w,
    /// --write-flagged) are open, as tcpdump does.
    #[arg(short = 'Z', value_name = "USER", value_hint = ValueHint::Username)]
    pub user: Option<String>,

    /// Live: serve Prometheus metrics on ADDR:PORT (/metrics, /healthz) until the capture ends
    ///
    /// For example 127.0.0.1:9477, or 0.0.0.0:9477 for a scraper on another host (9477 is
    /// staleconn's port). Read-only, one request per connection, at most 16 at once.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,

    /// Server side to analyse: address or CIDR with optional port (repeatable)
    ///
    /// For example 10.1.2.3:443, 10.1.0.0/16 or [2001:db8::1]:443. Without it every TCP
    /// flow is analysed.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub target: Vec<String>,

    /// Silence before a request answered by RST that counts as a NAT idle reset [default:
    /// 20s when the RST plainly came from a middlebox, 350s when the capture cannot tell]
    ///
    /// A middlebox's RST has a TTL unlike the server's, or comes sooner than a round trip;
    /// its silence must also be 100 round trips and longer than any the connection
    /// survived. The server's own RST (its TTL, a full round trip) is never one. Given, the
    /// one value holds whoever sent the RST.
    #[arg(long, value_name = "DURATION")]
    pub nat_idle: Option<String>,

    /// Silence before a request that gets nothing back (no ACK, no RST) while the client
    /// retransmits it, that counts as a middlebox dropping a forgotten connection [default:
    /// 20s when another connection to the same server was answered meanwhile, 60s otherwise]
    ///
    /// The shorter default also needs a silence of 100 round trips, longer than any the
    /// connection survived. Given, the one value holds either way.
    #[arg(long, value_name = "DURATION")]
    pub blackhole_idle: Option<String>,

    /// Output: a table for people, or JSON for scripts (live: one JSON object per line per
    /// event: each flagged flow, a summary every --summary-every, a final summary)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Colour the verdicts in the table: auto colours when standard output is a terminal
    /// and NO_COLOR is unset
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,

    /// List every flow, not only the flagged ones
    #[arg(long)]
    pub all: bool,

    /// Write every packet of the flagged flows to FILE (pcap, the capture's link type), for
    /// Wireshark; reads the capture a second time (live: needs -w)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub write_flagged: Option<PathBuf>,

    /// Live: keep, for each flagged flow, a small pcap of its handshake and last packets
    /// (the timeline's) in DIR, named by time, server and verdict; the event line says where
    ///
    /// The packets come from a ring of each open flow's recent packets, bounded in bytes;
    /// the directory is rotated (oldest file first) to stay within --keep-flagged-size and
    /// --keep-flagged-files. Started as root, a DIR staleconn makes is handed to the -Z
    /// user; one that was there must be writable by that user.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub keep_flagged: Option<PathBuf>,

    /// Live: the most bytes the --keep-flagged files take together (e.g. 100M, 2G)
    #[arg(long, value_name = "SIZE", default_value = "100M")]
    pub keep_flagged_size: String,

    /// Live: the most --keep-flagged files kept
    #[arg(long, value_name = "N", default_value_t = crate::evidence::DEFAULT_DIR_FILES)]
    pub keep_flagged_files: usize,

    /// Live, --format json: how often a summary line is written (wall-clock time)
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub summary_every: String,

    /// Draw, per server, the idle before each reuse of a connection as histograms by
    /// outcome on a log time axis, with the measured timeouts, to an SVG file
    #[arg(long, value_name = "FILE.svg", value_hint = ValueHint::FilePath)]
    pub plot: Option<PathBuf>,

    /// Show the details: each flagged flow's last packets, numbered as in Wireshark (JSON
    /// always has them), and per server every product that fits with its source and the
    /// setting in each common client library
    #[arg(long)]
    pub explain: bool,

    /// Fit the table to N columns [default: COLUMNS, else the terminal's width; not a
    /// terminal: no limit, each evidence sentence on one line]
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,

    /// The most flows tracked at once; the one idle longest is evicted to make room
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS)]
    pub max_flows: usize,

    /// Threads that track flows in a capture file, besides the one reading it (default: one
    /// less than the CPUs available, at least 1); the output is the same for any number
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Print the man page or a shell's completion script, made from these same definitions,
    /// and exit
    #[arg(long, value_enum, value_name = "WHAT")]
    pub generate: Option<Generate>,

    /// BPF filter expression, as for tcpdump (e.g. `tcp port 443`)
    #[arg(
        value_name = "EXPRESSION",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub expression: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `--color`: when the table's verdicts are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When standard output is a terminal and NO_COLOR is unset or empty
    Auto,
    /// Even into a pipe or a file (`less -R` shows it)
    Always,
    Never,
}

/// `--generate`: what to print instead of analysing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff), for `man -l -` or /usr/share/man/man1/staleconn.1
    Man,
    /// Bash completion, for /usr/share/bash-completion/completions/staleconn
    CompleteBash,
    /// Zsh completion, for a directory in $fpath, as _staleconn
    CompleteZsh,
    /// Fish completion, for ~/.config/fish/completions/staleconn.fish
    CompleteFish,
}

/// Where packets come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// One or more saved captures, read as one in timestamp order.
    File(Vec<String>),
    Live(LiveConfig),
    /// `-D`: list the interfaces and exit.
    ListInterfaces,
}

/// A live capture's own settings.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub options: LiveOptions,
    pub duration: Option<Duration>,
    pub write: Option<PathBuf>,
    pub user: Option<String>,
    /// `--metrics-listen`: where the metrics are served, and the peer labels.
    pub metrics: Option<MetricsConfig>,
    /// `--keep-flagged`: where each flagged flow's pcap goes, and the directory's bounds.
    pub keep_flagged: Option<KeepFlagged>,
    /// `--summary-every`: the event lines' periodic summary.
    pub summary_every: Duration,
}

/// `--keep-flagged DIR` with its bounds.
#[derive(Debug, Clone)]
pub struct KeepFlagged {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_files: usize,
}

/// The flow reports a live capture keeps for its final report: the latest this many, so
/// memory stays flat over days (event lines were written as they came).
pub const LIVE_REPORTS: usize = 1000;

/// Validated configuration for one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: Input,
    pub settings: Settings,
    pub output: Output,
    /// `--write-flagged`: where the flagged flows' packets go.
    pub write_flagged: Option<PathBuf>,
    /// `--plot`: where the SVG goes.
    pub plot: Option<PathBuf>,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config> {
        let targets = args
            .target
            .iter()
            .map(|t| t.parse::<Target>().map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()
            .context("--target")?;
        let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let mut thresholds = Thresholds::default();
        if let Some(idle) = &args.nat_idle {
            thresholds = thresholds.with_nat_idle(nanos(parse_duration("--nat-idle", idle)?));
        }
        if let Some(idle) = &args.blackhole_idle {
            thresholds =
                thresholds.with_blackhole_idle(nanos(parse_duration("--blackhole-idle", idle)?));
        }
        let duration = args
            .duration
            .as_deref()
            .map(|d| parse_duration("--duration", d))
            .transpose()?;
        if !(1..=262_144).contains(&args.snaplen) {
            bail!(
                "-s {}: the snapshot length must be between 1 and 262144 bytes",
                args.snaplen
            );
        }
        if args.count == Some(0) {
            bail!("-c 0: the packet count must be at least 1");
        }
        if args.threads == Some(0) {
            bail!("--threads 0: track flows on at least 1 thread");
        }
        if args.max_flows == 0 {
            bail!("--max-flows 0: track at least 1 flow (default {DEFAULT_MAX_FLOWS})");
        }
        // Output files are written after the capture was read, which can take long: a
        // missing directory is said at once.
        for (option, path) in [
            ("-w", &args.write),
            ("--write-flagged", &args.write_flagged),
            ("--plot", &args.plot),
        ] {
            if let Some(path) = path {
                check_directory_exists(option, path)?;
            }
        }
        let mut expression = args.expression;
        let read = input_files(&args.read, &mut expression)?;
        let metrics = args
            .metrics_listen
            .as_deref()
            .map(|listen| metrics_config(listen, &args.target, &targets))
            .transpose()?;
        if metrics.is_some() && args.interface.is_none() {
            bail!(
                "--metrics-listen serves a live capture's metrics: add -i IFACE (a file's figures are in --format json)"
            );
        }
        let bpf = (!expression.is_empty()).then(|| expression.join(" "));
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        if let Some(width) = args.width
            && width < MIN_WIDTH
        {
            bail!("--width {width}: the table needs at least {MIN_WIDTH} columns");
        }
        let output = match args.format {
            Format::Table => Output::Table {
                all: args.all,
                color,
                explain: args.explain,
                width: args.width.or_else(output_width),
            },
            Format::Json => Output::Json,
        };
        if args.write_flagged.is_some() {
            if read.iter().any(|r| r == "-") {
                bail!(
                    "--write-flagged reads the capture a second time, which standard input cannot do: save it to a file first (tcpdump -w FILE), or capture with staleconn -i ... -w FILE"
                );
            }
            if args.interface.is_some() && args.write.is_none() {
                bail!(
                    "--write-flagged with -i needs -w FILE: the flagged flows are copied from that file when the capture ends"
                );
            }
        }
        let summary_every = parse_duration("--summary-every", &args.summary_every)?;
        let keep_flagged = match args.keep_flagged {
            Some(_) if !read.is_empty() => bail!(
                "--keep-flagged is for a live capture (-i); for a file, --write-flagged FILE copies the flagged flows' packets"
            ),
            Some(dir) => {
                if args.keep_flagged_files == 0 {
                    bail!("--keep-flagged-files 0: keep at least 1 file");
                }
                Some(KeepFlagged {
                    dir,
                    max_bytes: parse_size("--keep-flagged-size", &args.keep_flagged_size)?,
                    max_files: args.keep_flagged_files,
                })
            }
            None => None,
        };
        let live = read.is_empty() && args.interface.is_some();
        let input = match (read.is_empty(), args.interface) {
            (false, _) => Input::File(read),
            (true, Some(device)) => Input::Live(LiveConfig {
                options: LiveOptions {
                    device,
                    snaplen: args.snaplen,
                    promiscuous: args.promisc && !args.no_promisc,
                },
                duration,
                write: args.write,
                user: args.user,
                metrics,
                keep_flagged,
                summary_every,
            }),
            (true, None) => Input::ListInterfaces,
        };
        Ok(Config {
            input,
            settings: Settings {
                bpf,
                targets,
                thresholds,
                // The table without --all lists flagged flows only; live JSON writes each
                // flagged flow as an event line and keeps no benign one.
                keep_benign: !(matches!(output, Output::Table { all: false, .. })
                    || live && output == Output::Json),
                max_reports: live.then_some(LIVE_REPORTS),
                count: args.count,
                max_flows: args.max_flows,
                threads: args.threads.unwrap_or_else(default_threads),
            },
            output,
            write_flagged: args.write_flagged,
            plot: args.plot,
        })
    }
}

/// Flow-tracking threads when `--threads` is not given: every CPU this process may use,
/// but one for the reading thread.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// The narrowest table `--width` accepts: the short columns and a few words of evidence.
pub const MIN_WIDTH: usize = 40;

/// The columns the table fits without `--width`: `COLUMNS` when set to a number (as `ls`
/// reads it), else the terminal's width when standard output is one. Not a terminal and no
/// `COLUMNS` (a pipe, a file, a CI log): no limit. Colour plays no part in it.
fn output_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    columns
        .or_else(terminal_width)
        .map(|width| width.max(MIN_WIDTH))
}

/// The width of the terminal standard output is, if it is one.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it is given, and nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The files to read: each `-r`, a glob expanded (sorted), and, when the shell expanded an
/// unquoted glob (`-r dump*.pcap`), the files it left at the front of the expression.
fn input_files(read: &[String], expression: &mut Vec<String>) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for value in read {
        let is_pattern = value.contains(['*', '?', '[']) && !Path::new(value).exists();
        if !is_pattern {
            files.push(value.clone());
            continue;
        }
        let mut matched: Vec<String> = glob::glob(value)
            .with_context(|| format!("-r '{value}': not a valid glob"))?
            .filter_map(|entry| entry.ok())
            .map(|path| path.display().to_string())
            .collect();
        if matched.is_empty() {
            bail!("-r '{value}': no file matches");
        }
        matched.sort();
        files.append(&mut matched);
    }
    if !files.is_empty() {
        let shell_expanded = expression
            .iter()
            .take_while(|word| Path::new(word.as_str()).is_file())
            .count();
        files.extend(expression.drain(..shell_expanded));
    }
    Ok(files)
}

/// An output file's directory exists (the file itself is made later).
fn check_directory_exists(option: &str, path: &Path) -> Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !directory.is_dir() {
        bail!(
            "{option} {}: no directory {}; name a file in a directory that exists",
            path.display(),
            directory.display()
        );
    }
    Ok(())
}

/// `--metrics-listen ADDR:PORT`, with each `--target` as given for the peer labels.
fn metrics_config(listen: &str, given: &[String], targets: &[Target]) -> Result<MetricsConfig> {
    let listen = listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "--metrics-listen '{listen}': use ADDR:PORT, e.g. 127.0.0.1:{port} or 0.0.0.0:{port}",
            port = metrics::DEFAULT_PORT
        )
    })?;
    Ok(MetricsConfig {
        listen,
        targets: targets.iter().copied().zip(given.iter().cloned()).collect(),
    })
}

/// A size in bytes, with an optional K, M or G suffix (powers of 1024).
fn parse_size(option: &str, text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let (digits, unit) = match trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => trimmed.split_at(at),
        None => (trimmed, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => bail!("{option} '{text}': use a size like 500K, 100M or 2G"),
    };
    let value: u64 = digits
        .parse()
        .with_context(|| format!("{option} '{text}': use a size like 500K, 100M or 2G"))?;
    if value == 0 {
        bail!("{option} must be more than zero");
    }
    Ok(value.saturating_mul(1 << shift))
}

fn parse_duration(option: &str, text: &str) -> Result<Duration> {
    let duration = humantime::parse_duration(text)
        .with_context(|| format!("{option} '{text}': use a duration like 350s, 5m or 2h"))?;
    if duration.is_zero() {
        bail!("{option} must be longer than zero");
    }
    Ok(duration)
}
