// AWS SDK for JavaScript v3 scenarios against any S3 endpoint given by the environment
// (ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, BUCKET_PREFIX,
// RESULTS_FILE, TRANSPORT, QUICK; see conformance/scenarios/lib.sh). Results use the same JSON
// lines as every other client.
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const require = createRequire(import.meta.url);
const CLIENT = "aws-sdk-js-v3";
const VERSION = require("@aws-sdk/client-s3/package.json").version;
const MIB = 1024 * 1024;
const ENDPOINT_URL = process.env.ENDPOINT_URL;
const TRANSPORT = process.env.TRANSPORT || ENDPOINT_URL.split(":")[0];
const QUICK = process.env.QUICK === "1";
const PREFIX = process.env.BUCKET_PREFIX || `cf-${randomBytes(4).toString("hex")}-`;
const ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

let passed = 0;
let failed = 0;

function record(scenario, ok, detail) {
  const line = { client: CLIENT, version: VERSION, scenario, transport: TRANSPORT, result: ok ? "pass" : "fail", detail: String(detail).slice(0, 2000) };
  if (process.env.RESULTS_FILE) fs.appendFileSync(process.env.RESULTS_FILE, JSON.stringify(line) + "\n");
  ok ? passed++ : failed++;
  console.log(`[${ok ? "PASS" : "FAIL"}] ${CLIENT} ${VERSION} ${TRANSPORT} ${scenario}${ok ? "" : ": " + detail}`);
}

async function scenario(name, body) {
  const started = Date.now();
  try {
    await body();
    record(name, true, `${((Date.now() - started) / 1000).toFixed(1)}s`);
  } catch (err) {
    record(name, false, `${err.name}: ${err.message}`);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function expectError(codes, promise) {
  const accepted = [].concat(codes);
  try {
    await promise;
  } catch (err) {
    const code = err.Code || err.name;
    check(accepted.includes(code) || accepted.includes(String(err.$metadata?.httpStatusCode)),
      `expected ${accepted.join("/")}, got ${code} (${err.$metadata?.httpStatusCode}): ${err.message}`);
    return;
  }
  throw new Error(`expected ${accepted.join("/")}, the call succeeded`);
}

function client(requestChecksumCalculation = "WHEN_SUPPORTED") {
  const ca = process.env.AWS_CA_BUNDLE && TRANSPORT === "https" ? fs.readFileSync(process.env.AWS_CA_BUNDLE) : undefined;
  return new S3Client({
    endpoint: ENDPOINT_URL,
    region: process.env.AWS_DEFAULT_REGION || "us-east-1",
    forcePathStyle: true,
    requestChecksumCalculation,
    responseChecksumValidation: "WHEN_SUPPORTED",
    maxAttempts: 2,
    ...(ca ? { requestHandler: { httpsAgent: new https.Agent({ ca, keepAlive: true }) } } : {}),
  });
}

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

async function bodyBytes(response) {
  return Buffer.from(await response.Body.transformToByteArray());
}

async function streamSha256(readable) {
  const hash = createHash("sha256");
  for await (const chunk of readable) hash.update(chunk);
  return hash.digest("hex");
}

function localChecksum(algorithm, buf) {
  if (algorithm === "CRC32") {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(zlib.crc32(buf) >>> 0);
    return out.toString("base64");
  }
  if (algorithm === "SHA1" || algorithm === "SHA256") return createHash(algorithm.toLowerCase()).update(buf).digest("base64");
  return null; // CRC32C and CRC64NVME have no Node built-in; the SDK's response validation covers them.
}

async function main() {
  const s3 = client();
  const bucket = `${PREFIX}js`.toLowerCase();
  const work = fs.mkdtempSync(path.join(process.env.WORK_DIR || os.tmpdir(), "js-"));

  await scenario("create-bucket", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  await scenario("put-get-buffer", async () => {
    const data = randomBytes(MIB + 3);
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "buffer", Body: data }));
    check(put.ETag.replaceAll('"', "") === createHash("md5").update(data).digest("hex"), `ETag ${put.ETag}`);
    const got = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "buffer" })));
    check(sha256(got) === sha256(data), "GET bytes differ");
  });

  await scenario("put-get-stream", async () => {
    const file = path.join(work, "stream.up");
    const data = randomBytes((QUICK ? 8 : 32) * MIB);
    fs.writeFileSync(file, data);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "stream", Body: fs.createReadStream(file), ContentLength: data.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "stream" }));
    check((await streamSha256(got.Body)) === sha256(data), "streamed GET bytes differ");
  });

  await scenario("lib-storage-upload-multipart", async () => {
    const size = (QUICK ? 16 : 64) * MIB + 123;
    const data = randomBytes(size);
    // A stream of unknown length: Upload has to cut it into parts itself.
    const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: "upload", Body: Readable.from([data.subarray(0, 7 * MIB), data.subarray(7 * MIB)]) }, partSize: 5 * MIB, queueSize: 2 });
    const out = await upload.done();
    check(/-\d+"?$/.test(out.ETag), `multipart ETag expected, got ${out.ETag}`);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "upload" }));
    check((await streamSha256(got.Body)) === sha256(data), "GET bytes differ");
  });

  for (const mode of ["WHEN_SUPPORTED", "WHEN_REQUIRED"]) {
    const s3m = client(mode);
    for (const algorithm of ALGORITHMS) {
      await scenario(`checksum-${mode.toLowerCase()}-${algorithm.toLowerCase()}`, async () => {
        const data = randomBytes(70000);
        const key = `checksum/${mode}/${algorithm}`;
        await s3m.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ChecksumAlgorithm: algorithm }));
        const head = await s3m.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
        const stored = head[`Checksum${algorithm}`];
        check(stored, `HeadObject returned no ${algorithm} checksum`);
        const want = localChecksum(algorithm, data);
        check(want === null || stored === want, `stored ${algorithm} ${stored} != ${want}`);
        const got = await bodyBytes(await s3m.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" })));
        check(got.equals(data), "GET bytes differ");
      });
    }
  }

  await scenario("multipart-checksum-crc32", async () => {
    const key = "checksum-mpu";
    const parts = [randomBytes(5 * MIB), randomBytes(999)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: "CRC32" }));
    const done = [];
    for (const [i, body] of parts.entries()) {
      const out = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body, ChecksumAlgorithm: "CRC32" }));
      check(out.ChecksumCRC32 === localChecksum("CRC32", body), `part ${i + 1} CRC32 ${out.ChecksumCRC32}`);
      done.push({ PartNumber: i + 1, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }));
    const got = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
    check(got.equals(Buffer.concat(parts)), "GET bytes differ from the parts");
  });

  await scenario("bad-checksum-refused", async () => {
    const key = "bad-checksum";
    const wrong = localChecksum("CRC32", Buffer.from("not the body"));
    await expectError(["BadDigest", "InvalidRequest"], s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from("the body"), ChecksumCRC32: wrong })));
    await expectError(["NotFound", "NoSuchKey", "404"], s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
  });

  await scenario("copy-object", async () => {
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "copy", CopySource: `${bucket}/buffer` }));
    const a = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "copy" })));
    const b = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "buffer" })));
    check(a.equals(b), "copy differs from its source");
  });

  await scenario("list-objects-v2-paginate", async () => {
    for (let i = 0; i < 30; i++) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `list/${String(i).padStart(2, "0")}`, Body: "x" }));
    const keys = [];
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client: s3, pageSize: 10 }, { Bucket: bucket, Prefix: "list/" })) {
      pages++;
      for (const o of page.Contents || []) keys.push(o.Key);
    }
    check(pages === 3, `${pages} pages, expected 3`);
    check(keys.join() === Array.from({ length: 30 }, (_, i) => `list/${String(i).padStart(2, "0")}`).join(), `listed ${keys.length} keys`);
  });

  await scenario("error-codes", async () => {
    await expectError("NoSuchKey", s3.send(new GetObjectCommand({ Bucket: bucket, Key: "missing" })));
    await expectError("NoSuchBucket", s3.send(new ListObjectsV2Command({ Bucket: `${PREFIX}js-missing` })));
    await expectError("BucketNotEmpty", s3.send(new DeleteBucketCommand({ Bucket: bucket })));
  });

  await scenario("delete-objects-and-bucket", async () => {
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket })) {
      const objects = (page.Contents || []).map((o) => ({ Key: o.Key }));
      if (objects.length === 0) continue;
      const out = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
      check(!out.Errors?.length, `errors: ${JSON.stringify(out.Errors?.slice(0, 2))}`);
    }
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    await expectError("NoSuchBucket", s3.send(new ListObjectsV2Command({ Bucket: bucket })));
  });

  fs.rmSync(work, { recursive: true, force: true });
  console.log(`${CLIENT}: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

await main();
