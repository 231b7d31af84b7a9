//! Command-line arguments (clap) and their validation into a `Config`. Stages get parts of
//! the `Config`, never clap types.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::Settings;
use crate::detect::Thresholds;
use crate::report::Output;
use crate::target::Target;

#[derive(Debug, Parser)]
#[command(
    name = "staleconn",
    version,
    about = "Reads a packet capture and tells, flow by flow, why requests on pooled HTTP keep-alive connections died",
    long_about = None,
    after_help = "Examples:\n  staleconn -r dump.pcap\n  staleconn -r dump.pcap --target 10.0.3.7:443 tcp port 443\n  tcpdump -i any -w - host 10.0.3.7 | staleconn -r -\n\nExit status: 0 no flow flagged, 1 some flows flagged, 2 error."
)]
pub struct Args {
    /// Read packets from FILE (pcap or pcapng; `-` is standard input)
    #[arg(short = 'r', value_name = "FILE")]
    pub read: String,

    /// Server side to analyse: address or CIDR with optional port (repeatable)
    #[arg(long, value_name = "HOST[:PORT]")]
    pub target: Vec<String>,

    /// Silence before a reset request that counts as a NAT idle reset
    #[arg(long, value_name = "DURATION", default_value = "350s")]
    pub nat_idle: String,

    /// Output: a table for people, or one JSON document for scripts
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// List every flow, not only the flagged ones
    #[arg(long)]
    pub all: bool,

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

/// Validated configuration for one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub input: String,
    pub settings: Settings,
    pub output: Output,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config> {
        let targets = args
            .target
            .iter()
            .map(|t| t.parse::<Target>().map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()
            .context("--target")?;
        let nat_idle = humantime::parse_duration(&args.nat_idle).with_context(|| {
            format!(
                "--nat-idle '{}': use a duration like 350s or 5m",
                args.nat_idle
            )
        })?;
        if nat_idle.is_zero() {
            bail!("--nat-idle must be longer than zero");
        }
        let bpf = (!args.expression.is_empty()).then(|| args.expression.join(" "));
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let output = match args.format {
            Format::Table => Output::Table {
                all: args.all,
                color,
            },
            Format::Json => Output::Json,
        };
        Ok(Config {
            input: args.read,
            settings: Settings {
                bpf,
                targets,
                thresholds: Thresholds {
                    nat_idle: i64::try_from(nat_idle.as_nanos()).unwrap_or(i64::MAX),
                },
                // The table without --all lists flagged flows only.
                keep_benign: !matches!(output, Output::Table { all: false, .. }),
            },
            output,
        })
    }
}
