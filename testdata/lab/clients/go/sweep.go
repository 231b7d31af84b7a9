// sweep: keep-alive race sweep client for the staleconn lab, Go net/http
// (standard library only, Go 1.19).
//
//	sweep --url https://HOST:PORT --idles 4.90,4.94,4.96 --log FILE
//	      [--client-name NAME] [-h2] [-tls12|-tls13] [-method GET|POST] [-no-keepalive]
//
// For each idle value, in parallel, started 0.15 s apart, with a new
// http.Transport (one connection each): GET URL/sweep/IDLE/1 (body read),
// sleep IDLE from the end of that read, METHOD URL/sweep/IDLE/2 on the same
// client, read the body, append one JSON line to FILE.  See ../README.md.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	t0     = time.Now()
	logMu  sync.Mutex
	logF   *os.File
	done   = map[int]bool{}
	reqTO  = 10 * time.Second
	method string
	// Go's net.Dialer turns on TCP keep-alive (SO_KEEPALIVE, 15 s idle and
	// interval) unless told otherwise; -no-keepalive switches it off.
	noKeepAlive bool
)

// jsonIdle renders an idle value as Python's json and the Java clients do
// (4.0, not 4).
func jsonIdle(v float64) json.RawMessage {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return json.RawMessage(s)
}

func since() float64 {
	s := time.Since(t0).Seconds()
	v, _ := strconv.ParseFloat(strconv.FormatFloat(s, 'f', 4, 64), 64)
	return v
}

// writeLine appends one JSON line with a single write(2) on an O_APPEND file,
// at most once per idle index.
func writeLine(i int, rec map[string]interface{}) bool {
	logMu.Lock()
	defer logMu.Unlock()
	if done[i] {
		return false
	}
	done[i] = true
	rec["t"] = since()
	b, err := json.Marshal(rec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep: json:", err)
		return false
	}
	b = append(b, '\n')
	if _, err := logF.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, "sweep: write log:", err)
		return false
	}
	logF.Sync()
	return true
}

// errType names the innermost error below *url.Error (io.EOF and friends by
// their variable names, others by their Go type).
func errType(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "io.EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "io.ErrUnexpectedEOF"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	}
	inner := err
	for {
		u := errors.Unwrap(inner)
		if u == nil {
			break
		}
		inner = u
	}
	return fmt.Sprintf("%T", inner)
}

type connRec struct {
	mu    sync.Mutex
	conns []httptrace.GotConnInfo
}

func (c *connRec) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c.mu.Lock()
		c.conns = append(c.conns, info)
		c.mu.Unlock()
	}}
}

func (c *connRec) get() []httptrace.GotConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]httptrace.GotConnInfo(nil), c.conns...)
}

func lportOf(info httptrace.GotConnInfo) interface{} {
	if info.Conn == nil {
		return nil
	}
	if a, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
		return a.Port
	}
	return nil
}

func newClient(h2 bool, tlsVer uint16) *http.Client {
	tc := &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         tlsVer,
		MaxVersion:         tlsVer,
	}
	d := &net.Dialer{Timeout: reqTO} // KeepAlive 0: Go's default, 15 s
	if noKeepAlive {
		d.KeepAlive = -1
	}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   reqTO,
		ResponseHeaderTimeout: reqTO,
		MaxIdleConnsPerHost:   1,
	}
	if h2 {
		tc.NextProtos = []string{"h2", "http/1.1"}
		tr.ForceAttemptHTTP2 = true
	} else {
		tc.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: reqTO}
}

func do(cl *http.Client, m, url string, rec *connRec) (int, error) {
	var body io.Reader
	if m == "POST" {
		body = bytes.NewReader([]byte("staleconn sweep body\n"))
	}
	req, err := http.NewRequest(m, url, body)
	if err != nil {
		return 0, err
	}
	if m == "POST" {
		req.Header.Set("Content-Type", "text/plain")
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), rec.trace()))
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

func outcomeOf(status int, err error) string {
	if err != nil {
		if status != 0 {
			return fmt.Sprintf("error: %s: status %d, body: %s", errType(err), status, err.Error())
		}
		return fmt.Sprintf("error: %s: %s", errType(err), err.Error())
	}
	return fmt.Sprintf("ok %d", status)
}

func sweep(i int, idleStr string, idle float64, base, name string, h2 bool, tlsVer uint16, tlsName string) {
	rec := map[string]interface{}{
		"client": name, "role": "sweep", "idle": jsonIdle(idle),
		"lport": nil, "lport2": nil, "reused": nil,
		"method": method, "path2": "/sweep/" + idleStr + "/2", "tls": tlsName,
	}
	cl := newClient(h2, tlsVer)
	defer cl.CloseIdleConnections()
	var r1, r2 connRec
	st, err := do(cl, "GET", base+"/sweep/"+idleStr+"/1", &r1)
	tEnd := time.Now()
	rec["t1"] = since()
	c1 := r1.get()
	if len(c1) > 0 {
		rec["lport"] = lportOf(c1[len(c1)-1])
	}
	if len(c1) > 0 && c1[len(c1)-1].Conn != nil {
		if tc, ok := c1[len(c1)-1].Conn.(*tls.Conn); ok {
			rec["alpn"] = tc.ConnectionState().NegotiatedProtocol
		}
	}
	if err != nil || st != 200 {
		rec["outcome"] = "request 1 failed: " + outcomeOf(st, err)
		writeLine(i, rec)
		return
	}
	time.Sleep(time.Until(tEnd.Add(time.Duration(idle * float64(time.Second)))))
	rec["slept"] = float64(time.Since(tEnd).Microseconds()) / 1e6
	st, err = do(cl, method, base+"/sweep/"+idleStr+"/2", &r2)
	out := outcomeOf(st, err)
	c2 := r2.get()
	if len(c2) > 0 {
		last := c2[len(c2)-1]
		rec["lport2"] = lportOf(last)
		if len(c1) > 0 {
			rec["reused"] = last.Reused && lportOf(last) != nil && lportOf(last) == rec["lport"]
		}
		ports := []string{}
		for _, c := range c2 {
			ports = append(ports, fmt.Sprint(lportOf(c)))
		}
		rec["conns2"] = len(c2)
		if err == nil {
			if len(c2) > 1 {
				out += " (retried on a new connection)"
			} else if rec["reused"] == false {
				out += " (on a new connection)"
			}
		} else if len(c2) > 1 {
			out += " (after a retry on a new connection, ports " + strings.Join(ports, ",") + ")"
		}
	}
	rec["outcome"] = out
	writeLine(i, rec)
}

func main() {
	url := flag.String("url", "", "https://HOST:PORT")
	idles := flag.String("idles", "4.90,4.94,4.96", "comma-separated idle seconds")
	logPath := flag.String("log", "", "JSON-lines log file (appended)")
	name := flag.String("client-name", "", "client name in the log (default go-h1 / go-h2)")
	h2 := flag.Bool("h2", false, "force HTTP/2 (ALPN h2); default HTTP/1.1 only")
	t12 := flag.Bool("tls12", false, "TLS 1.2 only")
	t13 := flag.Bool("tls13", false, "TLS 1.3 only (default)")
	flag.StringVar(&method, "method", "GET", "method of request 2: GET or POST")
	flag.BoolVar(&noKeepAlive, "no-keepalive", false, "no TCP keep-alive probes (Go's dialer default: 15 s)")
	flag.Parse()
	if *url == "" || *logPath == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: sweep --url https://HOST:PORT --idles 4.90,4.94 --log FILE [--client-name NAME] [-h2] [-tls12|-tls13] [-method GET|POST] [-no-keepalive]")
		os.Exit(2)
	}
	method = strings.ToUpper(method)
	if method != "GET" && method != "POST" {
		fmt.Fprintln(os.Stderr, "sweep: -method must be GET or POST")
		os.Exit(2)
	}
	if *t12 && *t13 {
		fmt.Fprintln(os.Stderr, "sweep: -tls12 and -tls13 are exclusive")
		os.Exit(2)
	}
	tlsVer, tlsName := uint16(tls.VersionTLS13), "1.3"
	if *t12 {
		tlsVer, tlsName = tls.VersionTLS12, "1.2"
	}
	if *name == "" {
		*name = "go-h1"
		if *h2 {
			*name = "go-h2"
		}
	}
	base := strings.TrimRight(*url, "/")
	var strs []string
	var vals []float64
	maxIdle := 0.0
	for _, s := range strings.Split(*idles, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 {
			fmt.Fprintln(os.Stderr, "sweep: bad idle value:", s)
			os.Exit(2)
		}
		strs, vals = append(strs, s), append(vals, v)
		if v > maxIdle {
			maxIdle = v
		}
	}
	if len(vals) == 0 {
		fmt.Fprintln(os.Stderr, "sweep: no idle values")
		os.Exit(2)
	}
	var err error
	logF, err = os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for i := range vals {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(float64(i) * 0.15 * float64(time.Second)))
			sweep(i, strs[i], vals[i], base, *name, *h2, tlsVer, tlsName)
		}(i)
	}
	fin := make(chan struct{})
	go func() { wg.Wait(); close(fin) }()
	select {
	case <-fin:
	case <-time.After(time.Duration((maxIdle + 30) * float64(time.Second))):
		// Watchdog: whatever has not reported gets a line, exit 3.
		for i := range vals {
			writeLine(i, map[string]interface{}{
				"client": *name, "role": "sweep", "idle": jsonIdle(vals[i]),
				"lport": nil, "lport2": nil, "reused": nil,
				"outcome": fmt.Sprintf("error: watchdog: no outcome within %.1f s", maxIdle+30),
			})
		}
		logF.Close()
		os.Exit(3)
	}
	logMu.Lock()
	n := len(done)
	logMu.Unlock()
	logF.Close()
	if n != len(vals) {
		os.Exit(1)
	}
}
