// The server's /metrics text as { name: value } (comment lines skipped), for the load scripts.
"use strict";
function parseMetrics(text) {
    const m = {};
    for (const l of text.split("\n")) {
        const p = l.split(" ");
        if (p.length === 2 && !l.startsWith("#")) m[p[0]] = Number(p[1]);
    }
    return m;
}
module.exports = { parseMetrics };
