// Validate an AsyncAPI document with the official parser; exit 1 on any error-level diagnostic.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity];
  if (d.severity <= 1) console.log(`${level}: ${d.message} at ${d.path.join(".")}`);
}
if (!document || errors.length) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.messages().length} messages, ${document.operations().length} operations`);
