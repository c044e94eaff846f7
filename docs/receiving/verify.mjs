// Verifies one wasmhook delivery both ways, as docs/receiving.md shows.
// Input on stdin: {"secret": "whsec_…", "headers": {...}, "body": "<exact body>"}.
import crypto from "node:crypto";
import { Webhook } from "standardwebhooks";

const { secret, headers, body } = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk)).on("end", () => done(text));
}));

// 1. X-Wasmhook-Signature: the reference product's snippet, keyed with the secret as shown.
const expected = crypto.createHmac("sha256", secret).update(body).digest("hex");
const given = headers["x-wasmhook-signature"] ?? "";
const same = given.length === expected.length &&
  crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected));
if (!same) {
  console.error("X-Wasmhook-Signature does not match");
  process.exit(1);
}

// 2. Standard Webhooks: the reference library checks webhook-signature and the timestamp.
try {
  new Webhook(secret).verify(body, headers);
} catch (error) {
  console.error(`webhook-signature: ${error.message}`);
  process.exit(1);
}
console.log("verified");
