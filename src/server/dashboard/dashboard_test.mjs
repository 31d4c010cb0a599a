// Browser test of the dashboard: headless Debian Chromium driven by playwright-core. Loads
// the page, waits for live data, and checks that every number shown matches the server's
// API; saves a screenshot.
//
//   node dashboard_test.mjs http://127.0.0.1:PORT screenshot.png VIEWER_TOKEN
import { chromium } from "playwright-core";

const [url, screenshot, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failures = 0;
function expect(what, actual, expected) {
  if (String(actual) !== String(expected)) {
    console.error(`MISMATCH ${what}: page shows ${actual}, API says ${expected}`);
    failures++;
  }
}
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url + "/#token=" + encodeURIComponent(token), { waitUntil: "load" });
  await page.waitForSelector("body[data-loaded=true] [data-improvement]", { timeout: 15000 });
  await page.waitForTimeout(500);  // charts drawn
  if (page.url().includes("token=")) throw new Error("the token stayed in the address bar");
  const api = await (await fetch(url + "/v1/fleet/improvements",
                                 { headers: { Authorization: "Bearer " + token } })).json();
  if (!api.improvements.length) throw new Error("the API lists no improvement");
  for (const imp of api.improvements) {
    const card = page.locator(`[data-improvement="${imp.id}"]`);
    for (const state of ["protected", "installed", "downloading", "available", "failed", "rolled_back", "opted_out"]) {
      expect(`${imp.id} ${state}`, await card.locator(`[data-state="${state}"]`).innerText(), imp.devices[state]);
    }
    expect(`${imp.id} rollout percent`, await card.locator('[data-field="rollout-percent"]').innerText(), imp.rollout.percent);
    expect(`${imp.id} rollout state`, await card.locator('[data-field="rollout-state"]').innerText(),
           imp.rollout.halted ? "halted" : "rolling out");
    const canvas = await card.locator("canvas").count();
    expect(`${imp.id} chart`, canvas, 1);
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`dashboard: ${api.improvements.length} improvement(s) checked, ${failures} mismatch(es)`);
} finally {
  await browser.close();
}
process.exit(failures === 0 ? 0 : 1);
