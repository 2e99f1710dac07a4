// Browser test of the page `executor dev` serves at `/`, in headless Chromium through
// puppeteer-core: the list loads and shows an existing execution; an execution created after
// the page loaded appears without a reload (live updates); its detail view shows the timeline
// and renders the image output; the failure piles view shows a failed execution's pile. Any
// page error, console error or failed request (a CSP violation, a 404) fails the test.
//
// usage: node page.cjs BASE_URL API_KEY EXISTING_EXECUTION_ID
// env:   PUPPETEER_CORE (module path), CHROMIUM (browser binary)
"use strict";

const puppeteer = require(process.env.PUPPETEER_CORE || "puppeteer-core");
const [base, key, existing] = process.argv.slice(2);

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}

async function create(model, input) {
  const resp = await fetch(base + "/v1/executions", {
    method: "POST",
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify({ model, input }),
  });
  const body = await resp.json();
  if (resp.status !== 201 && resp.status !== 202) fail("create answered " + resp.status + ": " + JSON.stringify(body));
  return body.id;
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: "shell",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const problems = [];
  const done = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push("console error: " + m.text());
    });
    page.on("requestfailed", (r) => problems.push("request failed: " + r.url() + " " + (r.failure() || {}).errorText));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push("HTTP " + r.status() + " for " + r.url());
    });

    // Load: the key comes in the link `executor dev` prints, then leaves the address bar.
    await page.goto(base + "/#/?key=" + encodeURIComponent(key), { waitUntil: "load" });
    await page.waitForSelector("#ex-" + existing, { timeout: 10000 });
    const shown = await page.$eval("#ex-" + existing, (tr) => tr.textContent);
    if (!shown.includes(existing)) fail("the row of " + existing + " does not name it: " + shown);
    const hash = await page.evaluate(() => location.hash);
    if (hash.includes("key=")) fail("the key stayed in the address bar: " + hash);
    done.push("list shows the existing execution");

    // Live updates: an execution created now appears without a reload, and reaches its end.
    const created = await create("openai/gpt-image-1", { prompt: "a red bicycle, seen by the browser test" });
    await page.waitForSelector("#ex-" + created, { timeout: 10000 });
    await page.waitForSelector("#ex-" + created + '[data-status="finalized"]', { timeout: 15000 });
    done.push("a new execution appeared live and finalized");

    // Detail: click it; the timeline lists its transitions and the image output renders.
    await page.click("#ex-" + created + " a");
    await page.waitForSelector('#timeline tr.event[data-event="delivered"]', { timeout: 10000 });
    const events = await page.$$eval("#timeline tr.event", (rows) => rows.map((r) => r.dataset.event));
    for (const e of ["accepted", "submit_started", "completed_inline", "delivered"]) {
      if (!events.includes(e)) fail("the timeline lacks " + e + ": " + events.join(", "));
    }
    const call = await page.$eval('#timeline tr.event[data-event="completed_inline"]', (r) => r.textContent);
    if (!/POST \S+\/v1\/images\/generations → 200/.test(call)) fail("the provider call is not shown: " + call);
    await page.waitForFunction(() => {
      const img = document.querySelector('#outputs figure[data-kind="image"] img');
      return img && img.complete && img.naturalWidth > 0;
    }, { timeout: 10000 });
    done.push("detail shows " + events.length + " timeline events and the rendered image");

    // Failure piles: a rejected prompt lands in the content_policy pile.
    const failed = await create("openai/gpt-image-1", { prompt: "sim:content_policy" });
    for (let i = 0; ; i++) {
      const r = await fetch(base + "/v1/executions/" + failed, { headers: { Authorization: "Bearer " + key } });
      const v = await r.json();
      if (v.status === "finalized") break;
      if (i > 100) fail(failed + " did not finish: " + JSON.stringify(v));
      await new Promise((res) => setTimeout(res, 100));
    }
    await page.click("#nav-failures");
    await page.waitForSelector("#piles tr.pile", { timeout: 10000 });
    const piles = await page.$$eval("#piles tr.pile", (rows) => rows.map((r) => r.textContent));
    if (!piles.some((p) => p.includes("content_policy") && p.includes(failed))) {
      fail("no content_policy pile naming " + failed + ": " + JSON.stringify(piles));
    }
    done.push("failures view shows the content_policy pile");

    if (problems.length) fail(problems.join("\n"));
    console.log(JSON.stringify({ ok: true, checks: done }));
  } finally {
    await browser.close();
  }
})().catch((e) => fail(e.stack || String(e)));
