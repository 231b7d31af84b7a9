#!/bin/sh
# Builds the lab's sweep clients into DIR:
#   DIR/sweep                  Go net/http client (go/sweep.go)
#   DIR/java/*.class           JdkSweep, ApacheSweep (+ SweepCommon)
# Usage: build.sh DIR.  Debian 12 packages: golang-go, default-jdk-headless,
# libhttpclient-java.  No network: stdlib-only Go module, Debian's jars.
# One line per failure on stderr; exit status 1 if any build failed.
set -u
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
JARS=/usr/share/java/httpclient.jar:/usr/share/java/httpcore.jar:/usr/share/java/commons-logging.jar
fail=0

# Go: module mode, no GOPATH, no proxy; a private build cache in OUT.
if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: go not found (apt-get install golang-go)" >&2; fail=1
elif ! ( cd "$HERE/go" && GO111MODULE=on GOFLAGS=-mod=mod GOPROXY=off GOPATH="$OUT/.gopath" \
            GOCACHE="$OUT/.gocache" CGO_ENABLED=0 go build -o "$OUT/sweep" . ) >"$OUT/build-go.log" 2>&1; then
    echo "build.sh: go build failed: $(tr '\n' ' ' < "$OUT/build-go.log")" >&2; fail=1
fi

# Java: JdkSweep needs only the JDK; ApacheSweep needs Debian's httpclient 4.5 jars.
if ! command -v javac >/dev/null 2>&1; then
    echo "build.sh: javac not found (apt-get install default-jdk-headless)" >&2; fail=1
else
    mkdir -p "$OUT/java"
    if ! javac -Xlint:all,-path -d "$OUT/java" "$HERE/java/SweepCommon.java" "$HERE/java/JdkSweep.java" \
            >"$OUT/build-jdk.log" 2>&1; then
        echo "build.sh: javac JdkSweep failed: $(tr '\n' ' ' < "$OUT/build-jdk.log")" >&2; fail=1
    fi
    missing=
    for j in $(echo "$JARS" | tr ':' ' '); do [ -r "$j" ] || missing="$missing $j"; done
    if [ -n "$missing" ]; then
        echo "build.sh: ApacheSweep: missing$missing (apt-get install libhttpclient-java)" >&2; fail=1
    elif ! javac -Xlint:all,-path -cp "$JARS" -d "$OUT/java" "$HERE/java/SweepCommon.java" \
            "$HERE/java/ApacheSweep.java" >"$OUT/build-apache.log" 2>&1; then
        echo "build.sh: javac ApacheSweep failed: $(tr '\n' ' ' < "$OUT/build-apache.log")" >&2; fail=1
    fi
fi
exit $fail
