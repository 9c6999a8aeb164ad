// Misbehaving HTTP clients for tests/test_faults.sh. Each mode prints one JSON line describing
// what the server did and exits 0 when the client itself ran (the test judges the outcome).
//   slow PORT N          N connections each send a request line and headers a byte at a time,
//                        one byte per write, never finishing; print when each is closed by the server
//   bigbody PORT BYTES [expect]  POST with Content-Length: BYTES, streaming zeros; print the status,
//                        the bytes sent and the reply body
//   vanish PORT          start a long streamed request, read its first audio bytes, destroy the socket
//   conns PORT N         open N idle connections at once; print how many the server closed/refused
//   bighdr PORT BYTES    a GET whose one header is BYTES long; print the status (or "closed")
"use strict";
const net = require("net");
const [mode, portS, nS] = process.argv.slice(2);
const port = Number(portS), n = Number(nS);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

function connect() { return net.connect({ host: "127.0.0.1", port }); }

if (mode === "slow") {
    // The request never completes: the bytes trickle on the event loop as fast as writes drain,
    // then stop mid-header. The server must close each connection by itself (--timeout).
    const head = "POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ";
    let closed = 0;
    for (let i = 0; i < n; i++) {
        const s = connect();
        let k = 0;
        const drip = () => { if (k < head.length && !s.destroyed) s.write(head[k++], drip); };
        s.on("connect", drip);
        s.on("error", () => {});
        s.on("close", () => { if (++closed === n) { out({ closed }); process.exit(0); } });
        s.resume();
    }
    console.error("slow: " + n + " clients connected and stalled");
} else if (mode === "bigbody") {
    // With a 4th argument "expect", the client asks first (Expect: 100-continue, as curl does for
    // big bodies) and streams only after "100 Continue"; otherwise it streams at once.
    const expect = process.argv[5] === "expect";
    const s = connect();
    let reply = "", sent = 0, started = false;
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => {
        started = true;
        while (sent < n && !s.destroyed) {
            sent += chunk.length;
            if (!s.write(chunk)) { s.once("drain", pump); return; }
        }
    };
    s.on("connect", () => {
        s.write(`POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${n}\r\n${expect ? "Expect: 100-continue\r\n" : ""}\r\n`);
        if (!expect) pump();
    });
    s.on("data", (d) => {
        reply += d.toString("latin1");
        if (expect && !started && /^HTTP\/1\.1 100/.test(reply)) { reply = reply.replace(/^HTTP\/1\.1 100[^]*?\r\n\r\n/, ""); pump(); }
        if (/^HTTP\/1\.[01] [2-5]\d\d[^]*\r\n\r\n/.test(reply) && reply.includes("}")) s.destroy();
    });
    s.on("error", () => {});
    s.on("close", () => {
        const m = /^HTTP\/1\.[01] (\d+)/.exec(reply);
        out({ status: m ? Number(m[1]) : 0, sent, body: reply.split("\r\n\r\n")[1] || "" });
    });
} else if (mode === "vanish") {
    const story = Array.from({ length: 300 }, (_, i) => `Sentence ${i} of a story nobody hears to the end.`).join(" ");
    const body = JSON.stringify({ input: story, response_format: "pcm" });
    const s = connect();
    let got = 0;
    s.on("connect", () => s.write(`POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
    s.on("data", (d) => {
        got += d.length;
        if (got > 20000) { s.destroy(); out({ received: got }); process.exit(0); }
    });
    s.on("error", (e) => { out({ error: e.message }); process.exit(1); });
} else if (mode === "conns") {
    // N idle connections; once every one is either open for a moment or closed by the server,
    // report how many the server dropped. Each open one is then probed with a request.
    let settled = 0, closedEarly = 0, answered = 0;
    const socks = [];
    const done = () => {
        if (++settled < n) return;
        out({ opened: n, closed_by_server: closedEarly, answered });
        for (const s of socks) s.destroy();
        process.exit(0);
    };
    for (let i = 0; i < n; i++) {
        const s = connect();
        socks.push(s);
        let fin = false;
        const finish = () => { if (!fin) { fin = true; done(); } };
        s.on("error", () => {});
        s.on("connect", () => s.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        s.on("data", (d) => { if (/^HTTP\/1\.1 200/.test(d.toString())) answered++; finish(); });
        s.on("close", () => { if (!fin) closedEarly++; finish(); });
    }
} else if (mode === "bighdr") {
    const s = connect();
    let reply = "";
    s.on("connect", () => s.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"h".repeat(n)}\r\n\r\n`));
    s.on("data", (d) => { reply += d.toString("latin1"); });
    s.on("error", () => {});
    s.on("close", () => {
        const m = /^HTTP\/1\.[01] (\d+)/.exec(reply);
        out({ status: m ? Number(m[1]) : 0 });
    });
} else {
    console.error("usage: faultclient.js slow|bigbody|vanish|conns|bighdr PORT N");
    process.exit(2);
}
