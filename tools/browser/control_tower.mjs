// Drives the control tower page in the system's headless Chromium (no browser download).
//
//   node control_tower.mjs --url http://127.0.0.1:PORT --initial N --target M --screenshot-dir DIR
//
// Protocol with the pytest test (one JSON object per stdout line):
//   {"step":"board","shipments":N}      the page shows N shipments: produce more now
//   {"step":"live","shipments":M}       the count rose to >= M without a reload
//   {"step":"timeline","shipment":id,"entries":k,"title":...}
//   {"step":"done"}
// Any failure prints {"step":"error","message":...} and exits 1.
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const url = arg("url");
const initial = Number(arg("initial", "1"));
const target = Number(arg("target", "2"));
const dir = arg("screenshot-dir", ".");
const timeout = Number(arg("timeout-ms", "45000"));
const executablePath = arg("chromium", "/usr/bin/chromium");

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
  const problems = [];
  page.on("pageerror", (err) => problems.push(String(err)));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()}`));
  await page.goto(url, { waitUntil: "load", timeout });
  const count = () => page.$eval("#kpi-shipments", (el) => Number(el.dataset.value));

  await page.waitForFunction((n) => Number(document.querySelector("#kpi-shipments").dataset.value) >= n,
                             initial, { timeout, polling: 200 });
  say({ step: "board", shipments: await count() });

  // The test produces more states now; the page must show them without a reload.
  await page.waitForFunction((n) => Number(document.querySelector("#kpi-shipments").dataset.value) >= n,
                             target, { timeout, polling: 200 });
  await page.waitForSelector("#carrier-body .carrier-row", { timeout });
  await page.waitForSelector("#status-chart svg g[data-status]", { timeout });
  await page.waitForSelector("#queue-body .queue-row", { timeout });
  await page.waitForTimeout(2500); // let one more poll fill the throughput chart for the screenshot
  say({ step: "live", shipments: await count(), problems });
  await page.screenshot({ path: `${dir}/control-tower.png`, fullPage: true });

  // Drill down: the first row of the exception queue opens that shipment's timeline.
  const shipment = await page.locator("#queue-body .queue-row").first().getAttribute("data-shipment");
  // A locator re-resolves if the poll re-renders the row under the click.
  await page.locator(`#queue-body .queue-row[data-shipment="${shipment}"]`).click({ timeout });
  await page.waitForSelector("#timeline .tl-entry", { timeout });
  const entries = await page.$$eval("#timeline .tl-entry", (els) => els.length);
  const title = await page.$eval("#shipment-id", (el) => el.textContent);
  say({ step: "timeline", shipment, entries, title, hash: new URL(page.url()).hash });
  await page.screenshot({ path: `${dir}/control-tower-shipment.png`, fullPage: true });
  if (problems.length) throw new Error(`page problems: ${problems.join("; ")}`);
  say({ step: "done" });
} catch (err) {
  say({ step: "error", message: String(err && err.stack || err) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
