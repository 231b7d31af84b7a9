//! The man page and completions as a user gets them from `staleconn --generate`: they list
//! exactly the options `--help` lists, and `man` renders the page without a warning.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

#[path = "common/tools.rs"]
mod tools;

const STALECONN: &str = env!("CARGO_BIN_EXE_staleconn");

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(STALECONN).args(args).output().unwrap();
    assert!(out.status.success(), "staleconn {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The flags named at the head of an option's entry: `-h, --help` gives both, `-r <FILE>`
/// gives `-r`.
fn flags_in_tag(tag: &str) -> Vec<String> {
    tag.split_whitespace()
        .map(|word| word.trim_end_matches(','))
        .take_while(|word| word.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// Every flag `--help` lists: an option's entry starts at two or six spaces (`  -r <FILE>`,
/// `      --all`); its description is indented further.
fn help_flags() -> BTreeSet<String> {
    let help = stdout_of(&["--help"]);
    let flags: BTreeSet<String> = help
        .lines()
        .filter(|line| line.starts_with("  -") || line.starts_with("      --"))
        .flat_map(flags_in_tag)
        .collect();
    // A parser that finds nothing would pass every comparison below.
    assert!(
        flags.len() >= 20,
        "too few flags parsed from --help: {flags:?}"
    );
    assert!(
        flags.contains("--target") && flags.contains("-r"),
        "{flags:?}"
    );
    flags
}

/// Every flag the man page's option entries name: the line after each `.TP`, with roff's
/// escapes and fonts taken out.
fn man_flags(roff: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = roff.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == ".TP")
        .flat_map(|pair| {
            let plain = pair[1]
                .replace("\\-", "-")
                .replace("\\fB", "")
                .replace("\\fI", "")
                .replace("\\fR", "");
            flags_in_tag(&plain)
        })
        .collect()
}

#[test]
fn man_page_lists_every_flag_that_help_lists() {
    let roff = stdout_of(&["--generate", "man"]);
    assert_eq!(man_flags(&roff), help_flags());
    for section in [
        "SYNOPSIS",
        "OPTIONS",
        "EXAMPLES",
        "EXIT STATUS",
        "PRIVILEGES",
    ] {
        assert!(
            roff.contains(&format!(".SH {section}"))
                || roff.contains(&format!(".SH \"{section}\"")),
            "no {section} section"
        );
    }
}

#[test]
fn man_renders_the_page_without_warnings_and_with_every_flag() {
    let roff = stdout_of(&["--generate", "man"]);
    tools::require(&tools::MAN);
    let mut man = Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start man");
    man.stdin
        .take()
        .unwrap()
        .write_all(roff.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man --warnings: {stderr}");
    let rendered = String::from_utf8(out.stdout).unwrap();
    // Option entries are indented 7 columns in the rendered page, their text 14.
    let rendered_flags: BTreeSet<String> = rendered
        .lines()
        .filter(|line| line.starts_with("       -"))
        .flat_map(flags_in_tag)
        .collect();
    assert_eq!(rendered_flags, help_flags(), "{rendered}");
    assert!(
        rendered.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{rendered}"
    );
}

#[test]
fn completions_offer_every_long_flag() {
    let long: Vec<String> = help_flags()
        .into_iter()
        .filter(|flag| flag.starts_with("--"))
        .collect();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["--generate", &format!("complete-{shell}")]);
        for flag in &long {
            // fish names long flags without their dashes: `-l target`.
            let named = match shell {
                "fish" => format!("-l {}", &flag[2..]),
                _ => flag.clone(),
            };
            assert!(script.contains(&named), "{shell} completion lacks {flag}");
        }
    }
}

#[test]
fn bash_completion_is_valid_bash_and_completes_the_format() {
    let script = stdout_of(&["--generate", "complete-bash"]);
    // Complete `staleconn --format <TAB>` as bash would.
    let probe = format!(
        "{script}\nCOMP_WORDS=(staleconn --format ''); COMP_CWORD=2; COMP_LINE='staleconn --format '; \
         COMP_POINT=${{#COMP_LINE}}; _staleconn staleconn '' --format; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let offered = String::from_utf8(out.stdout).unwrap();
    assert_eq!(offered.lines().collect::<Vec<_>>(), ["table", "json"]);
}

#[test]
fn short_help_is_shorter_and_long_help_has_the_examples() {
    let short = stdout_of(&["-h"]);
    let long = stdout_of(&["--help"]);
    assert!(short.lines().count() < long.lines().count());
    assert!(!short.contains("Examples:"), "{short}");
    assert!(short.contains("Exit status: 0 no flow flagged"), "{short}");
    assert!(long.contains("Examples:\n"), "{long}");
    assert!(long.contains("staleconn -r 'cap-*.pcap'"), "{long}");
}
