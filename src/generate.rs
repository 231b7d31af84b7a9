//! `--generate`: the man page and the shell completions, made from the clap definitions in
//! `cli.rs` at run time, so they list exactly the options `--help` lists and cannot drift.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

use crate::cli::{Args, EXAMPLES, EXIT_STATUS, EXIT_STATUS_NOTE, Generate};

/// The program's name in the man page and the completions.
const BIN_NAME: &str = "staleconn";

/// Writes what `what` names to `out`.
pub fn write(what: Generate, out: &mut dyn Write) -> Result<()> {
    let mut command = Args::command();
    match what {
        Generate::Man => man_page(command, out)?,
        Generate::CompleteBash => complete(Shell::Bash, &mut command, out)?,
        Generate::CompleteZsh => complete(Shell::Zsh, &mut command, out)?,
        Generate::CompleteFish => complete(Shell::Fish, &mut command, out)?,
    }
    out.flush()?;
    Ok(())
}

fn complete(shell: Shell, command: &mut clap::Command, out: &mut dyn Write) -> Result<()> {
    // clap_complete panics when a write fails; a buffer cannot fail, and `out` may be a
    // pipe closed early (`| head`), which is not an error.
    let mut script = Vec::new();
    clap_complete::generate(shell, command, BIN_NAME, &mut script);
    out.write_all(&script)?;
    Ok(())
}

/// clap_mangen renders the title, description and options; the synopsis (one line per way
/// to run it, which clap's one usage line does not show) and the sections clap has no place
/// for (examples, exit status, privileges, environment) are written here, from the same
/// constants `--help` uses.
fn man_page(command: clap::Command, out: &mut dyn Write) -> Result<()> {
    let man = clap_mangen::Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    out.write_all(synopsis().render().as_bytes())?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    out.write_all(extra_sections().render().as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}

/// The four ways to run it, as the README's usage shows them.
fn synopsis() -> Roff {
    let mut page = Roff::new();
    page.control("SH", ["SYNOPSIS"]);
    let options = || {
        [
            roman(" ["),
            italic("options"),
            roman("] ["),
            italic("EXPRESSION"),
            roman("...]"),
        ]
    };
    let lines: [Vec<roff::Inline>; 4] = [
        [bold(BIN_NAME), bold(" -r "), italic("FILE")]
            .into_iter()
            .chain(options())
            .collect(),
        [bold(BIN_NAME), bold(" -i "), italic("IFACE")]
            .into_iter()
            .chain(options())
            .collect(),
        vec![bold(BIN_NAME), bold(" -D")],
        vec![bold(BIN_NAME), bold(" --generate "), italic("WHAT")],
    ];
    page.control("nf", []);
    for line in lines {
        page.text(line);
    }
    page.control("fi", []);
    page
}

fn extra_sections() -> Roff {
    let mut page = Roff::new();
    page.control("SH", ["EXAMPLES"]);
    for (what, command) in EXAMPLES {
        page.control("PP", []).text([roman(format!("{what}:"))]);
        // No fill: a command is shown as typed.
        page.control("RS", ["4"])
            .control("nf", [])
            .text([bold(*command)])
            .control("fi", [])
            .control("RE", []);
    }

    page.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        page.control("TP", [])
            .text([bold(*code)])
            .text([roman(*meaning)]);
    }
    page.control("PP", []).text([roman(EXIT_STATUS_NOTE)]);

    page.control("SH", ["PRIVILEGES"]);
    page.text([
        roman(
            "Reading a capture file needs no privileges beyond reading the file. Capturing \
             live (-i) needs the capabilities CAP_NET_RAW and CAP_NET_ADMIN: run it as root, \
             and it becomes ",
        ),
        italic("nobody"),
        roman(
            " once the device and the output files are open (-Z USER to choose another), or \
             give the binary the capabilities once, and run it as any user:",
        ),
    ]);
    page.control("RS", ["4"])
        .control("nf", [])
        .text([bold(
            "setcap cap_net_raw,cap_net_admin=eip /usr/bin/staleconn",
        )])
        .control("fi", [])
        .control("RE", []);
    page.control("PP", []).text([roman(
        "Then anyone who can run the binary can capture every packet on every interface. \
         The capabilities let it open capture devices; they do not let it read files its \
         user cannot read. Replacing the binary (an upgrade) drops them: set them again.",
    )]);

    page.control("SH", ["ENVIRONMENT"]);
    page.control("TP", []).text([bold("NO_COLOR")]).text([roman(
        "When set and not empty, the table is not coloured (unless --color always). \
         The layout stays the same.",
    )]);
    page.control("TP", []).text([bold("COLUMNS")]).text([roman(
        "The width the report fits, when --width is not given; without either, the \
         terminal's width, and into a pipe or a file no limit.",
    )]);

    page.control("SH", ["SEE ALSO"]);
    page.text([
        bold("tcpdump"),
        roman("(8), "),
        bold("pcap-filter"),
        roman("(7), "),
        bold("setcap"),
        roman("(8), "),
        bold("wireshark"),
        roman("(1)"),
    ]);
    page
}
