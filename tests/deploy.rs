//! The Kubernetes deployment (deploy/): the DaemonSet's security settings, read from its
//! YAML (capture with NET_RAW and NET_ADMIN only, nothing else of the node's), the pieces
//! that must agree across files (metrics port, user, capabilities, evidence size), and,
//! where the tools are installed, the Kubernetes schema (kubernetes-validate, kubeconform)
//! and promtool on the alert rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn deploy_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn deploy_file(file: &str) -> String {
    std::fs::read_to_string(deploy_path(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Every document of a multi-document YAML file.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("deploy/daemonset.yaml is YAML"))
        .collect()
}

fn manifests() -> Vec<Value> {
    documents(&deploy_file("daemonset.yaml"))
}

fn daemonset(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "DaemonSet").collect();
    assert_eq!(found.len(), 1, "deploy/daemonset.yaml: want one DaemonSet");
    found[0]
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|seq| {
            seq.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag` in the container's arguments.
fn arg_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Bytes of a Kubernetes quantity (`256Mi`, `1G`) or of a size like `200MB`.
fn bytes(quantity: &str) -> Option<u64> {
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &quantity[digits.len()..];
    let scale: u64 = match unit {
        "" | "B" => 1,
        "k" | "K" | "KB" => 1000,
        "M" | "MB" => 1000 * 1000,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
}

/// What in the DaemonSet gives the pod more than capture needs, or breaks what the node
/// guide promises; empty when all is well.
fn security_problems(ds: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_string());
        }
    };
    let pod = &ds["spec"]["template"]["spec"];
    want(
        pod["hostNetwork"] == true,
        "hostNetwork: true (to see the node's traffic)",
    );
    for shared in ["hostPID", "hostIPC"] {
        want(
            pod[shared].is_null() || pod[shared] == false,
            "no hostPID, no hostIPC",
        );
    }
    want(
        pod["automountServiceAccountToken"] == false,
        "automountServiceAccountToken: false (staleconn never calls the API)",
    );
    let tolerates_all = pod["tolerations"].as_sequence().is_some_and(|t| {
        t.iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null())
    });
    want(
        tolerates_all,
        "a toleration with operator Exists and no key: every node",
    );

    let containers = pod["containers"].as_sequence().cloned().unwrap_or_default();
    want(containers.len() == 1, "one container");
    let Some(container) = containers.first() else {
        return problems;
    };
    let sc = &container["securityContext"];
    want(
        strings(&sc["capabilities"]["drop"]) == ["ALL"],
        "capabilities drop ALL",
    );
    let mut added = strings(&sc["capabilities"]["add"]);
    added.sort();
    want(
        added == ["NET_ADMIN", "NET_RAW"],
        "capabilities add NET_RAW and NET_ADMIN only",
    );
    want(
        sc["readOnlyRootFilesystem"] == true,
        "readOnlyRootFilesystem: true",
    );
    want(
        sc["allowPrivilegeEscalation"] == false,
        "allowPrivilegeEscalation: false",
    );
    want(
        sc["privileged"].is_null() || sc["privileged"] == false,
        "not privileged",
    );
    let non_root = |ctx: &Value| ctx["runAsNonRoot"] == true;
    want(
        non_root(sc) || non_root(&pod["securityContext"]),
        "runAsNonRoot: true",
    );
    let user = sc["runAsUser"]
        .as_u64()
        .or_else(|| pod["securityContext"]["runAsUser"].as_u64());
    want(user.is_some_and(|u| u != 0), "runAsUser set, not 0");

    let node_name = container["env"].as_sequence().is_some_and(|env| {
        env.iter().any(|e| {
            e["name"] == "NODE_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
        })
    });
    want(
        node_name,
        "NODE_NAME from the downward API (fieldRef spec.nodeName)",
    );

    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            want(
                !container["resources"][kind][resource].is_null(),
                &format!("resources.{kind}.{resource} set"),
            );
        }
    }

    let volumes = pod["volumes"].as_sequence().cloned().unwrap_or_default();
    for volume in &volumes {
        let name = volume["name"].as_str().unwrap_or("?");
        want(
            volume["emptyDir"]["sizeLimit"].as_str().is_some(),
            &format!("volume {name}: an emptyDir with a sizeLimit (no host paths)"),
        );
    }
    problems
}

#[test]
fn daemonset_captures_with_net_raw_and_net_admin_only() {
    let docs = manifests();
    let problems = security_problems(daemonset(&docs));
    assert!(
        problems.is_empty(),
        "deploy/daemonset.yaml wants: {problems:#?}"
    );
}

#[test]
fn security_check_catches_a_pod_given_more() {
    // The check above must be able to fail: the same DaemonSet with one setting loosened
    // each time.
    let yaml = deploy_file("daemonset.yaml");
    let loosened = [
        (
            "- NET_ADMIN\n",
            "- NET_ADMIN\n                - SYS_ADMIN\n",
        ),
        ("- ALL\n", "- NET_BIND_SERVICE\n"),
        (
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        ),
        (
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        ),
        ("sizeLimit: 256Mi", "medium: Memory"),
        ("fieldPath: spec.nodeName", "fieldPath: metadata.name"),
        ("runAsUser: 65532", "runAsUser: 0"),
    ];
    for (from, to) in loosened {
        assert!(
            yaml.contains(from),
            "deploy/daemonset.yaml no longer has {from:?}"
        );
        let docs = documents(&yaml.replacen(from, to, 1));
        assert!(
            !security_problems(daemonset(&docs)).is_empty(),
            "replacing {from:?} by {to:?} went unnoticed"
        );
    }
}

#[test]
fn metrics_port_is_the_one_scraped_and_probed() {
    let docs = manifests();
    let ds = daemonset(&docs);
    let pod = &ds["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args = strings(&container["args"]);
    let listen = arg_after(&args, "--metrics-listen").expect("--metrics-listen in args");
    let port = listen.rsplit(':').next().unwrap();
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port);
    assert_eq!(
        container["ports"][0]["containerPort"]
            .as_u64()
            .map(|p| p.to_string())
            .as_deref(),
        Some(port),
        "containerPort"
    );
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("a Service");
    assert_eq!(
        service["spec"]["ports"][0]["port"]
            .as_u64()
            .map(|p| p.to_string())
            .as_deref(),
        Some(port)
    );
    // Bound to the node's own address (the pod's, with hostNetwork), where the kubelet probes.
    assert!(
        listen.starts_with("$(POD_IP):"),
        "--metrics-listen {listen}"
    );
    let pod_ip = container["env"].as_sequence().unwrap().iter().any(|e| {
        e["name"] == "POD_IP" && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    });
    assert!(pod_ip, "POD_IP from fieldRef status.podIP");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
}

#[test]
fn evidence_stays_within_its_volume() {
    let docs = manifests();
    let pod = &daemonset(&docs)["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    let dir = arg_after(&args, "--keep-flagged").expect("--keep-flagged in args");
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| dir.starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("--keep-flagged {dir} is on no mounted volume"));
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let limit = bytes(volume["emptyDir"]["sizeLimit"].as_str().unwrap()).unwrap();
    let kept = arg_after(&args, "--keep-flagged-size").expect("--keep-flagged-size in args");
    let kept = bytes(kept).unwrap_or_else(|| panic!("--keep-flagged-size {kept}"));
    // Beyond sizeLimit the kubelet evicts the pod; rotation must keep well below it.
    assert!(
        kept * 10 <= limit * 9,
        "--keep-flagged-size {kept} B, sizeLimit {limit} B"
    );
    assert!(arg_after(&args, "--keep-flagged-files").is_some());
}

#[test]
fn every_object_is_in_the_staleconn_namespace() {
    for doc in manifests() {
        let kind = doc["kind"].as_str().unwrap().to_string();
        if kind == "Namespace" {
            assert_eq!(doc["metadata"]["name"], "staleconn");
        } else {
            assert_eq!(doc["metadata"]["namespace"], "staleconn", "{kind}");
        }
    }
}

#[test]
fn containerfile_gives_the_user_and_capabilities_the_daemonset_expects() {
    let containerfile = deploy_file("Containerfile");
    let docs = manifests();
    let pod = &daemonset(&docs)["spec"]["template"]["spec"];
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(
        containerfile
            .lines()
            .any(|l| l == format!("USER {uid}:{uid}")),
        "deploy/Containerfile: want USER {uid}:{uid}"
    );
    assert!(containerfile.contains("setcap cap_net_raw,cap_net_admin=eip /usr/bin/staleconn"));
    assert!(containerfile.contains("FROM docker.io/library/debian:bookworm-slim"));
    assert!(containerfile.contains("libpcap0.8"));
}

/// Runs `program args` from deploy/ when it is installed; `None` when it is not.
fn run_if_installed(program: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(program)
        .args(args)
        .current_dir(deploy_path(""))
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED {program} {}: {program} is not installed",
                args.join(" ")
            );
            None
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    // pip install kubernetes-validate; or kubeconform. Without either, the tests above
    // still check what matters for security by reading the YAML.
    if let Some(out) = run_if_installed("kubernetes-validate", &["--strict", "daemonset.yaml"]) {
        assert_success(&out, "kubernetes-validate --strict deploy/daemonset.yaml");
    }
    if let Some(out) = run_if_installed("kubeconform", &["-strict", "-summary", "daemonset.yaml"]) {
        assert_success(&out, "kubeconform -strict deploy/daemonset.yaml");
    }
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    // promtool: apt-get install prometheus.
    if let Some(out) = run_if_installed("promtool", &["check", "rules", "alerts.yaml"]) {
        assert_success(&out, "promtool check rules deploy/alerts.yaml");
    }
    if let Some(out) = run_if_installed("promtool", &["test", "rules", "alerts_test.yaml"]) {
        assert_success(&out, "promtool test rules deploy/alerts_test.yaml");
    }
}

#[test]
fn size_units_read_as_kubernetes_and_staleconn_write_them() {
    assert_eq!(bytes("256Mi"), Some(256 << 20));
    assert_eq!(bytes("200MB"), Some(200_000_000));
    assert_eq!(bytes("1G"), Some(1_000_000_000));
    assert_eq!(bytes("12parsecs"), None);
}
