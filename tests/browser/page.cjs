// Browser test of the page `executor dev` serves at `/`, in headless Chromium through
// puppeteer-core, asserting what a person sees: the list loads and shows an existing
// execution; an execution created after the page loaded appears without a reload (live
// updates), its status badge reads `succeeded` in green and its output is a thumbnail; a
// failed one reads `failed` in red; the succeeded one's page shows the timeline with public
// statuses, its cost lines as a table (no raw JSON) and the image at its real size; the
// failed one's page says why there are no outputs (never `nullnull`); the failure piles view
// shows its pile. Any page error, console error or failed request (a CSP violation, a 404)
// fails the test.
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

async function settled(id) {
  for (let i = 0; ; i++) {
    const r = await fetch(base + "/v1/executions/" + id, { headers: { Authorization: "Bearer " + key } });
    const v = await r.json();
    if (v.delivery && v.delivery.state !== "pending") return v;
    if (i > 150) fail(id + " did not finish: " + JSON.stringify(v));
    await new Promise((res) => setTimeout(res, 100));
  }
}

// What a person reads in an element: its visible text and its colour.
function look(sel) {
  return (e) => {
    const s = getComputedStyle(e);
    return { text: e.textContent.trim(), color: s.color, background: s.backgroundColor, className: e.className };
  };
}

const GREEN = "rgb(19, 115, 51)";
const RED = "rgb(179, 38, 30)";

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
    await page.waitForSelector("#ex-" + created + '[data-status="succeeded"]', { timeout: 15000 });
    await page.waitForSelector("#ex-" + created + ' [data-delivery="none"]', { timeout: 15000 });
    const badge = await page.$eval("#ex-" + created + " span.status", look());
    if (badge.text !== "succeeded" || badge.color !== GREEN) fail("the succeeded badge reads " + JSON.stringify(badge));
    // Its output as a thumbnail in the list: a loaded image, small.
    await page.waitForFunction(
      (id) => {
        const img = document.querySelector("#ex-" + id + " img.thumb");
        return img && img.complete && img.naturalWidth > 0;
      },
      { timeout: 10000 },
      created,
    );
    const thumb = await page.$eval("#ex-" + created + " img.thumb", (img) => ({ h: img.getBoundingClientRect().height, natural: img.naturalHeight }));
    if (!(thumb.h > 0 && thumb.h <= 48 && thumb.natural > thumb.h)) fail("the thumbnail is not a thumbnail: " + JSON.stringify(thumb));
    done.push("a new execution appeared live, succeeded in green, with a thumbnail");

    // A failed one: red `failed` in the list (never a green `finalized`), its error in the row.
    const failed = await create("openai/gpt-image-1", { prompt: "sim:content_policy" });
    await settled(failed);
    await page.waitForSelector("#ex-" + failed + '[data-status="failed"]', { timeout: 10000 });
    const red = await page.$eval("#ex-" + failed + " span.status", look());
    if (red.text !== "failed" || red.color !== RED) fail("the failed badge reads " + JSON.stringify(red));
    const row = await page.$eval("#ex-" + failed, (tr) => tr.textContent);
    if (!row.includes("content_policy") || row.includes("finalized")) fail("the failed row reads: " + row);
    done.push("a failed execution is listed as failed in red with its error");

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
    const size = await page.$eval('#outputs figure[data-kind="image"] img', (img) => ({ w: img.getBoundingClientRect().width, h: img.getBoundingClientRect().height, nw: img.naturalWidth, nh: img.naturalHeight }));
    if (Math.round(size.w) !== size.nw || Math.round(size.h) !== size.nh) fail("the image is not at its real size: " + JSON.stringify(size));
    // The timeline speaks public statuses (the internal ones small beside them); the status
    // badge reads the outcome; the cost lines are a table, not JSON.
    const delivered = await page.$eval('#timeline tr.event[data-event="delivered"]', (r) => ({
      status: r.querySelector("span.status").textContent,
      delivery: r.querySelector("span.delivery").textContent,
      costRows: [...r.querySelectorAll("table.cost-lines tr.cost-line")].map((tr) => [...tr.cells].map((c) => c.textContent)),
      text: r.textContent,
    }));
    if (delivered.status !== "succeeded" || !delivered.delivery.startsWith("none")) fail("the delivered row reads " + JSON.stringify(delivered));
    if (!delivered.costRows.length || !delivered.costRows.every((c) => c.length === 5 && c[2].startsWith("$") && c[3].startsWith("$"))) fail("no cost table: " + JSON.stringify(delivered));
    const pageText = await page.$eval("#view", (v) => v.textContent);
    for (const raw of ["cost_lines", '{"unit"', "unit_price_usd"]) {
      if (pageText.includes(raw)) fail("raw JSON on the page: " + raw);
    }
    const facts = await page.$eval("dl.facts", (dl) => dl.textContent);
    if (!facts.includes("succeeded") || facts.includes("finalized")) fail("the facts read: " + facts);
    done.push("detail shows " + events.length + " timeline events with public statuses, a cost table, and the image at its real size (" + size.nw + "×" + size.nh + ")");

    // The failed one's page: why there are no outputs, in words.
    await page.evaluate((id) => (location.hash = "#/executions/" + id), failed);
    await page.waitForSelector("#no-outputs", { timeout: 10000 });
    const failedPage = await page.$eval("#view", (v) => v.textContent);
    if (failedPage.includes("nullnull")) fail("the failed page shows nullnull: " + failedPage);
    const why = await page.$eval("#no-outputs", (p) => p.textContent);
    if (!why.includes("failed") || !why.includes("content_policy")) fail("no reason for the missing outputs: " + why);
    const failedBadge = await page.$eval("dl.facts span.status", look());
    if (failedBadge.text !== "failed" || failedBadge.color !== RED) fail("the failed page's badge reads " + JSON.stringify(failedBadge));
    done.push("a failed execution's page says why it has no outputs");

    // Work in progress: a public status of work in progress (which one depends on how fast
    // the provider starts under load), and no absent section rendered as "null".
    const slow = await create("runway/gen4-turbo", { promptImage: "https://example.com/a.png", promptText: "slow sim:duration=60000" });
    await page.evaluate((id) => (location.hash = "#/executions/" + id), slow);
    await page.waitForFunction(
      (id) => {
        const b = document.querySelector("dl.facts span.status");
        return document.body.textContent.includes(id) && b && ["queued", "starting", "processing"].includes(b.textContent);
      },
      { timeout: 15000 },
      slow,
    );
    const slowPage = await page.$eval("#view", (v) => v.textContent);
    if (slowPage.includes("null") || slowPage.includes("Outputs")) fail("the page of a running execution reads: " + slowPage);
    await fetch(base + "/v1/executions/" + slow + "/cancel", { method: "POST", headers: { Authorization: "Bearer " + key } });
    await page.waitForFunction(() => (document.querySelector("dl.facts span.status") || {}).textContent === "canceled", { timeout: 15000 });
    done.push("a running execution reads a work-in-progress status, then canceled");

    // Failure piles: a rejected prompt lands in the content_policy pile.
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
