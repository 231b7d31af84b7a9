#!/usr/bin/env node
// Keep-alive reuse sweep for the staleconn lab (Node.js core modules only).
//
//   node sweep.js --url https://HOST:PORT --idles 4.90,4.94 --log FILE [--client-name NAME]
//                 [--tls12 | --tls13] [--method GET|POST]
//   node sweep.js --url http://HOST:PORT  --h2c ...        (HTTP/2 prior knowledge)
//
// For each IDLE, in parallel (started 0.15 s apart, a new pool each):
//   https / http: an http(s).Agent({keepAlive: true, maxSockets: 1}) (keepAliveMsecs is
//     left at its default, 1000: the Agent turns on SO_KEEPALIVE with a 1 s idle on its
//     sockets, so the kernel sends a TCP keep-alive probe every second while idle);
//     GET URL/sweep/IDLE/1, read the response, sleep IDLE, METHOD URL/sweep/IDLE/2 through
//     the same Agent (which reuses the pooled socket unless it saw the server's FIN first).
//   --h2c: http2.connect(URL) (cleartext, prior knowledge); GET /sweep/IDLE/1, sleep IDLE,
//     METHOD /sweep/IDLE/2 on the same session, or on a new session if the old one was
//     closed or got a GOAWAY meanwhile (as a pool would).
// One JSON line per idle: {"client","role":"sweep","idle","lport","lport2","reused",
//   "outcome":"ok 200" | "error: <code or name>: <message>","t"}.
"use strict";
const http = require("http"), https = require("https"), http2 = require("http2");
const fs = require("fs");

const args = process.argv.slice(2);
const opt = { method: "GET", name: "node", tls: null, h2c: false, idles: "4.90,4.94" };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--url") opt.url = args[++i];
  else if (a === "--idles") opt.idles = args[++i];
  else if (a === "--log") opt.log = args[++i];
  else if (a === "--client-name") opt.name = args[++i];
  else if (a === "--method") opt.method = args[++i];
  else if (a === "--tls12") opt.tls = "TLSv1.2";
  else if (a === "--tls13") opt.tls = "TLSv1.3";
  else if (a === "--h2c") opt.h2c = true;
  else { console.error("sweep.js: unknown argument " + a); process.exit(2); }
}
if (!opt.url || !opt.log) { console.error("sweep.js: --url and --log are required"); process.exit(2); }
const T0 = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - T0) / 1e9;
const logf = fs.openSync(opt.log, "a");
function log(o) {
  o = Object.assign({ client: opt.name, role: "sweep" }, o, { t: Math.round(now() * 1e4) / 1e4 });
  fs.writeSync(logf, JSON.stringify(o) + "\n");
}
const errText = (e) => "error: " + (e.code || e.name || "Error") + ": " + e.message;
const BODY = "x".repeat(64);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

// ---- HTTP/1.1 through an Agent -------------------------------------------------------
function h1request(agent, path, method) {
  return new Promise((resolve) => {
    const u = new URL(opt.url);
    const mod = u.protocol === "https:" ? https : http;
    const o = { agent, method, host: u.hostname, port: u.port, path,
                headers: method === "POST" ? { "content-type": "text/plain", "content-length": BODY.length } : {} };
    if (u.protocol === "https:") {
      o.rejectUnauthorized = false;
      if (opt.tls) { o.minVersion = opt.tls; o.maxVersion = opt.tls; }
    }
    let lport = null, reused = null;
    const req = mod.request(o, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve({ ok: true, status: res.statusCode, lport, reused }));
      res.on("error", (e) => resolve({ ok: false, err: e, lport, reused }));
    });
    req.on("socket", (s) => {
      reused = req.reusedSocket;
      const grab = () => { if (s.localPort) lport = s.localPort; };
      grab();
      if (!lport) s.once(u.protocol === "https:" ? "secureConnect" : "connect", grab);
    });
    req.on("error", (e) => resolve({ ok: false, err: e, lport, reused }));
    req.setTimeout(15000, () => req.destroy(new Error("client timeout 15 s")));
    if (method === "POST") req.write(BODY);
    req.end();
  });
}

async function sweepH1(idle, delay) {
  await sleep(delay);
  const agent = new (new URL(opt.url).protocol === "https:" ? https : http).Agent({ keepAlive: true, maxSockets: 1 });
  const r1 = await h1request(agent, "/sweep/" + idle.toFixed(2) + "/1", "GET");
  const t1 = now();
  if (!r1.ok) { log({ idle, lport: r1.lport, lport2: null, reused: null, first: errText(r1.err), outcome: "error: first request failed" }); agent.destroy(); return; }
  await sleep(idle);
  const slept = now() - t1;
  const r2 = await h1request(agent, "/sweep/" + idle.toFixed(2) + "/2", opt.method);
  log({ idle, lport: r1.lport, lport2: r2.lport, reused: r2.reused, slept: Math.round(slept * 1e4) / 1e4,
        outcome: r2.ok ? "ok " + r2.status : errText(r2.err) });
  agent.destroy();
}

// ---- HTTP/2 prior knowledge (h2c) ------------------------------------------------------
function h2session() {
  const s = http2.connect(opt.url);
  s.on("error", () => {});          // reported through the stream
  s.lab = { goaway: false, lport: null };
  s.on("goaway", () => { s.lab.goaway = true; });
  s.on("connect", () => { s.lab.lport = s.socket && s.socket.localPort; });
  return s;
}
function h2request(s, path, method) {
  return new Promise((resolve) => {
    let st;
    try {
      st = s.request({ ":method": method, ":path": path }, { endStream: method !== "POST" });
    } catch (e) { resolve({ ok: false, err: e }); return; }
    let status = null;
    st.on("response", (h) => { status = h[":status"]; });
    st.on("data", () => {});
    st.on("end", () => resolve(status ? { ok: true, status } : { ok: false, err: new Error("stream ended without a response") }));
    st.on("error", (e) => resolve({ ok: false, err: e }));
    st.on("close", () => { if (!status) resolve({ ok: false, err: Object.assign(new Error("stream closed, rst code " + st.rstCode), { code: "ERR_HTTP2_STREAM_CLOSED" }) }); });
    st.setTimeout(15000, () => st.close(http2.constants.NGHTTP2_CANCEL));
    if (method === "POST") st.end(BODY);
  });
}
async function sweepH2c(idle, delay) {
  await sleep(delay);
  let s = h2session();
  const r1 = await h2request(s, "/sweep/" + idle.toFixed(2) + "/1", "GET");
  const lport = s.lab.lport || (s.socket && s.socket.localPort);
  const t1 = now();
  await sleep(idle);
  const slept = now() - t1;
  let reused = true;
  if (s.closed || s.destroyed || s.lab.goaway) { reused = false; s.close(); s = h2session(); }
  const r2 = await h2request(s, "/sweep/" + idle.toFixed(2) + "/2", opt.method);
  const lport2 = s.lab.lport || (s.socket && s.socket.localPort) || (reused ? lport : null);
  log({ idle, lport, lport2, reused, slept: Math.round(slept * 1e4) / 1e4,
        first: r1.ok ? "ok " + r1.status : errText(r1.err),
        outcome: r2.ok ? "ok " + r2.status : errText(r2.err) });
  s.close();
  if (!s.destroyed) setTimeout(() => s.destroy(), 200).unref();
}

const idles = opt.idles.split(",").map(Number);
const run = opt.h2c ? sweepH2c : sweepH1;
const hard = setTimeout(() => { console.error("sweep.js: giving up after 300 s"); process.exit(1); }, 300000);
hard.unref();
Promise.all(idles.map((idle, i) => run(idle, 0.15 * i))).then(() => { fs.closeSync(logf); process.exit(0); });
