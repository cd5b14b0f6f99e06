// The web console in a real browser: Debian's Chromium, driven by Playwright (playwright-core,
// no browser download). A person's path through it: sign in with the keyboard, browse to an
// object the aws cli uploaded and read its BLAKE3 and uploader, watch a GET arrive in the live
// feed, download the object and compare bytes, be refused a page another user's policy
// forbids, upload a file in parts, set a legal hold and be refused a delete by Object Lock,
// sign out; the pages fit a phone's screen; and an uploaded HTML page opened by a signed-in
// user cannot read the console on the same host and port.
//
// Environment as for every client (ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_CA_BUNDLE, BUCKET_PREFIX, RESULTS_FILE, TRANSPORT, CONFORMANCE_TIER; see
// conformance/scenarios/lib.sh), and:
//   AWS_BIN              the aws cli that uploads and makes the second user (/usr/bin/aws)
//   PYTHON               an interpreter with the blake3 package (the test venv's)
//   CHROMIUM             the browser (/usr/bin/chromium)
//   CONSOLE_SCREENSHOTS  a folder to save the main pages' screenshots in (docs/console/)
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { chromium } from "playwright-core";

const CLIENT = "console in Chromium";
const ENDPOINT_URL = process.env.ENDPOINT_URL;
const TRANSPORT = process.env.TRANSPORT || ENDPOINT_URL.split(":")[0];
const PREFIX = process.env.BUCKET_PREFIX || `cf-${randomBytes(4).toString("hex")}-`;
const AWS = process.env.AWS_BIN || "/usr/bin/aws";
const PYTHON = process.env.PYTHON || "python3";
const SHOTS = process.env.CONSOLE_SCREENSHOTS;
const ROOT_KEY = process.env.AWS_ACCESS_KEY_ID;
const ROOT_SECRET = process.env.AWS_SECRET_ACCESS_KEY;
const WAIT_MS = 30_000;

let version = "unknown";
let passed = 0;
let failed = 0;

function record(scenario, result, detail) {
  const line = { client: CLIENT, version, scenario, transport: TRANSPORT, result, detail: String(detail).slice(0, 2000) };
  if (process.env.RESULTS_FILE) fs.appendFileSync(process.env.RESULTS_FILE, JSON.stringify(line) + "\n");
  if (result === "fail") failed++;
  else if (result === "pass") passed++;
  console.log(`[${result.toUpperCase()}] ${CLIENT} ${version} ${TRANSPORT} ${scenario}${result === "pass" ? "" : ": " + detail}`);
}

/** Thrown by a scenario that has nothing to check here: recorded as skipped, not passed. */
class Skip extends Error {}

/** Runs one scenario; its body returns the detail recorded with a pass. */
async function scenario(name, body) {
  const started = Date.now();
  try {
    const detail = await body();
    record(name, "pass", detail ?? `${((Date.now() - started) / 1000).toFixed(1)}s`);
  } catch (err) {
    if (err instanceof Skip) record(name, "skip", err.message);
    else record(name, "fail", `${err.name}: ${err.message}`);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function aws(args, env = {}) {
  return execFileSync(AWS, ["--endpoint-url", ENDPOINT_URL, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function blake3(file) {
  const code = "import blake3, sys; print(blake3.blake3(open(sys.argv[1], 'rb').read()).hexdigest())";
  return execFileSync(PYTHON, ["-c", code, file], { encoding: "utf8" }).trim();
}

function sha256(file) {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** The text of the `dd` after the `dt` whose text is `term`, on the object page. */
async function fact(page, term) {
  return (await page.locator("dl.facts dt", { hasText: new RegExp(`^${term}$`) }).locator("xpath=following-sibling::dd[1]").innerText()).trim();
}

/** How long the last navigation took to load, in ms (reported, not asserted). */
async function loadMs(page) {
  return page.evaluate(() => Math.round(performance.getEntriesByType("navigation")[0].duration));
}

async function signIn(page, accessKey, secretKey) {
  await page.goto(`${ENDPOINT_URL}/_console/`);
  check(page.url().endsWith("/_console/sign-in"), `not sent to sign in: ${page.url()}`);
  // With the keyboard only: the access key field has the focus.
  await page.locator("input[name=access_key]:focus").waitFor({ timeout: WAIT_MS });
  await page.keyboard.type(accessKey);
  await page.keyboard.press("Tab");
  await page.keyboard.type(secretKey);
  await Promise.all([page.waitForURL(/\/_console\/buckets$/), page.keyboard.press("Enter")]);
}

async function main() {
  if (process.env.CONFORMANCE_TIER === "core") {
    record("console", "skip", "front end only: runs in the full tier, on the local store");
    return;
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "console-"));
  const bucket = `${PREFIX}console`;
  const key = "releases/1.0/app.tar";
  const upload = path.join(work, "app.tar");
  fs.writeFileSync(upload, randomBytes(200 * 1024 + 7));
  aws(["s3", "mb", `s3://${bucket}`]);
  aws(["s3", "cp", "--quiet", upload, `s3://${bucket}/${key}`]);
  const readme = path.join(work, "readme.txt");
  fs.writeFileSync(readme, "read me\n");
  aws(["s3", "cp", "--quiet", readme, `s3://${bucket}/public/readme.txt`]);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    chromiumSandbox: process.getuid?.() !== 0,
  });
  version = browser.version();
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const objectUrl = `${ENDPOINT_URL}/_console/objects/${bucket}/${key}`;
  try {
    await scenario("console-sign-in-with-keyboard", async () => {
      await signIn(page, ROOT_KEY, ROOT_SECRET);
      await page.getByRole("link", { name: bucket, exact: true }).waitFor({ timeout: WAIT_MS });
      const ms = await loadMs(page);
      await shot(page, "buckets");
      return `bucket list loaded in ${ms} ms`;
    });

    await scenario("console-browse-to-cli-upload", async () => {
      await page.getByRole("link", { name: bucket, exact: true }).click();
      await page.getByRole("link", { name: "releases/", exact: true }).click();
      await page.getByRole("link", { name: "1.0/", exact: true }).click();
      await shot(page, "folder");
      await page.getByRole("link", { name: "app.tar", exact: true }).click();
      await page.waitForURL(objectUrl);
      const shown = await fact(page, "BLAKE3");
      const expected = blake3(upload);
      check(shown === expected, `BLAKE3 shown ${shown}, the file's ${expected}`);
      const uploader = await fact(page, "Uploaded by");
      check(uploader.includes(ROOT_KEY), `uploader ${uploader}`);
      return `object page loaded in ${await loadMs(page)} ms`;
    });

    await scenario("console-live-feed-shows-a-get", async () => {
      const feed = await context.newPage();
      await feed.goto(`${ENDPOINT_URL}/_console/feed?bucket=${bucket}&type=v1.object.retrieved`);
      await feed.locator("#feed-state", { hasText: "live" }).waitFor({ timeout: WAIT_MS });
      aws(["s3", "cp", "--quiet", `s3://${bucket}/${key}`, path.join(work, "fetched")]);
      const item = feed.locator("#feed li", { hasText: `${bucket}/${key}` });
      await item.first().waitFor({ timeout: WAIT_MS });
      const text = await item.first().innerText();
      check(text.includes("v1.object.retrieved") && text.includes(ROOT_KEY), `feed item: ${text}`);
      // Paused, the feed holds what arrives.
      await feed.getByRole("button", { name: "Pause" }).click();
      const before = await feed.locator("#feed li").count();
      aws(["s3", "cp", "--quiet", `s3://${bucket}/${key}`, path.join(work, "fetched-again")]);
      await feed.locator("#feed-state", { hasText: /\d+ waiting/ }).waitFor({ timeout: WAIT_MS });
      check((await feed.locator("#feed li").count()) === before, "a paused feed showed a new event");
      await feed.getByRole("button", { name: "Resume" }).click();
      await feed.locator("#feed li").nth(before).waitFor({ timeout: WAIT_MS });
      await shot(feed, "feed");
      await feed.close();
    });

    await scenario("console-download-matches-upload", async () => {
      await page.goto(objectUrl);
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download" }).click()]);
      const saved = path.join(work, "downloaded");
      await download.saveAs(saved);
      check(sha256(saved) === sha256(upload), "the downloaded bytes differ from the upload");
      // The reads so far show on the page: the two GETs of the aws cli and this download.
      await page.reload();
      const reads = await page.locator("h2:has-text('Reads') + p").innerText();
      check(/Read \d+ times/.test(reads), `reads: ${reads}`);
      await shot(page, "object");
    });

    await scenario("console-refuses-what-policy-forbids", async () => {
      const user = `${PREFIX}viewer`;
      aws(["iam", "create-user", "--user-name", user]);
      const [viewerKey, viewerSecret] = aws([
        "iam", "create-access-key", "--user-name", user, "--query", "AccessKey.[AccessKeyId,SecretAccessKey]", "--output", "text",
      ]).trim().split(/\s+/);
      const policy = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${bucket}/public/*` }] };
      aws(["iam", "put-user-policy", "--user-name", user, "--policy-name", "public-reads", "--policy-document", JSON.stringify(policy)]);
      const other = await browser.newContext({ ignoreHTTPSErrors: true });
      try {
        const viewer = await other.newPage();
        await signIn(viewer, viewerKey, viewerSecret);
        const refused = await viewer.goto(objectUrl);
        check(refused.status() === 403, `status ${refused.status()} for a forbidden object`);
        await viewer.getByRole("heading", { name: "Access denied" }).waitFor({ timeout: WAIT_MS });
        check(!(await viewer.content()).includes(blake3(upload)), "the forbidden object's digest was shown");
        const allowed = await viewer.goto(`${ENDPOINT_URL}/_console/objects/${bucket}/public/readme.txt`);
        check(allowed.status() === 200, `status ${allowed.status()} for an allowed object`);
        check((await fact(viewer, "BLAKE3")) === blake3(readme), "the allowed object's BLAKE3");
      } finally {
        await other.close();
      }
    });

    await scenario("console-upload-in-parts", async () => {
      // A file of two parts and a bit, uploaded from a folder's page with a progress bar.
      const file = path.join(work, "upload.bin");
      fs.writeFileSync(file, randomBytes(2 * 8 * 1024 * 1024 + 4097));
      await page.goto(`${ENDPOINT_URL}/_console/buckets/${bucket}?prefix=uploads%2F`);
      await page.locator("input[name=file]").setInputFiles(file);
      await Promise.all([
        page.waitForURL(`${ENDPOINT_URL}/_console/objects/${bucket}/uploads/upload.bin`, { timeout: 120_000 }),
        page.getByRole("button", { name: "Upload", exact: true }).click(),
      ]);
      const shown = await fact(page, "BLAKE3");
      check(shown === blake3(file), `BLAKE3 shown ${shown}, the file's ${blake3(file)}`);
      const etag = await fact(page, "ETag");
      check(etag.endsWith("-3"), `a multipart upload of three parts: ETag ${etag}`);
    });

    await scenario("console-changes-go-through-s3", async () => {
      // A legal hold set from the page, then a delete of the held version refused by Object
      // Lock with S3's code, as from any client.
      const locked = `${PREFIX}locked`;
      aws(["s3api", "create-bucket", "--bucket", locked, "--object-lock-enabled-for-bucket"]);
      aws(["s3", "cp", "--quiet", readme, `s3://${locked}/held.txt`]);
      await page.goto(`${ENDPOINT_URL}/_console/objects/${locked}/held.txt`);
      await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Set legal hold ON" }).click()]);
      const hold = await fact(page, "Legal hold");
      check(hold === "ON", `legal hold: ${hold}`);
      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "Delete this version" }).click();
      await page.locator("#action-status", { hasText: "Refused: AccessDenied" }).waitFor({ timeout: WAIT_MS });
      await page.getByRole("button", { name: "Set legal hold OFF" }).waitFor({ timeout: WAIT_MS });
    });

    await scenario("console-out-of-reach-of-uploaded-html", async () => {
      // An HTML object opened from the same host and port, by a signed-in user, tries to read
      // the console: it runs (its title changes) but in a sandbox of its own origin.
      const html = path.join(work, "evil.html");
      fs.writeFileSync(
        html,
        `<html><head><title>pending</title></head><body><script>
        fetch("/_console/buckets", { credentials: "include" })
          .then((r) => r.text())
          .then((t) => { document.title = t.includes(${JSON.stringify(bucket)}) ? "LEAKED" : "kept out"; },
                () => { document.title = "kept out"; });
        </script></body></html>`,
      );
      aws(["s3", "cp", "--quiet", "--content-type", "text/html", html, `s3://${bucket}/evil.html`]);
      const link = aws(["s3", "presign", `s3://${bucket}/evil.html`]).trim();
      const evil = await context.newPage();
      try {
        await evil.goto(link);
        await evil.waitForFunction(() => document.title !== "pending", null, { timeout: WAIT_MS });
        const title = await evil.title();
        check(title === "kept out", `the uploaded page's script read the console: ${title}`);
      } finally {
        await evil.close();
      }
    });

    await scenario("console-fits-a-phone", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(objectUrl);
      const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      check(scroll <= width + 1, `the page is ${scroll} px wide on a ${width} px screen`);
      await shot(page, "object-phone");
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    await scenario("console-packages", async () => {
      // Sealed with the gateway's own CLI, which the suite hands over for the gateway target.
      const cli = process.env.ARTIFACT_STORE_BIN;
      if (!cli || !process.env.DATA_DIR) throw new Skip("no gateway CLI (ARTIFACT_STORE_BIN, DATA_DIR) to seal a package with");
      const name = `${PREFIX}release-1.0`;
      execFileSync(cli, ["package", "seal", `s3://${bucket}/releases/1.0/`, "--name", name, "--data-dir", process.env.DATA_DIR], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      await page.goto(`${ENDPOINT_URL}/_console/packages`);
      await page.getByRole("link", { name, exact: true }).click();
      await page.getByRole("heading", { name: `Package ${name}` }).waitFor({ timeout: WAIT_MS });
      const notice = await page.locator("main .notice").innerText();
      check(notice.includes("every member is still the version it names"), `package notice: ${notice}`);
      await shot(page, "package");
    });

    await scenario("console-operations", async () => {
      await page.goto(`${ENDPOINT_URL}/_console/operations`);
      const ready = await fact(page, "Ready");
      check(ready === "yes", `ready: ${ready}`);
      await shot(page, "operations");
    });

    await scenario("console-sign-out", async () => {
      await page.goto(`${ENDPOINT_URL}/_console/buckets`);
      await Promise.all([page.waitForURL(/\/_console\/sign-in$/), page.getByRole("button", { name: "Sign out" }).click()]);
      await page.goto(`${ENDPOINT_URL}/_console/buckets`);
      check(page.url().endsWith("/_console/sign-in"), `still signed in: ${page.url()}`);
      const cookies = await context.cookies();
      check(!cookies.some((c) => c.name.endsWith("console_session") && c.value), "the session cookie stayed");
    });
  } finally {
    await browser.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  record("console-setup", "fail", `${err.name}: ${err.message}`);
}
console.log(`${CLIENT}: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
