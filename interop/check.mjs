// Cross-checks hookgate against the providers' official npm libraries, both ways where
// the library can sign. Usage: node check.mjs PATH/TO/hookgate
import { execFileSync, spawnSync } from "node:child_process";
import { sign as octokitSign, verify as octokitVerify } from "@octokit/webhooks-methods";
import "@shopify/shopify-api/adapters/web-api";
import { shopifyApi, ApiVersion } from "@shopify/shopify-api";
import { getHmac } from "@shopify/shopify-api/test-helpers";
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";
import { generateKeyPairSync } from "node:crypto";
import sendgrid from "@sendgrid/eventwebhook";
import starkbank from "starkbank-ecdsa";
import curves from "starkbank-ecdsa/ellipticcurve/curve.js";

const HOOKGATE = process.argv[2];
const NOW = Math.floor(Date.now() / 1000);
const BODY = JSON.stringify({ event: "application.scored", data: { id: "app_9", note: "ünïcode ✓" } });
const results = [];

function hookgateSign(scheme, secret, body, extra = []) {
  const out = execFileSync(HOOKGATE, ["sign", "--scheme", scheme, "--secret", secret, "--id", "msg_node_1", "--timestamp", String(NOW), ...extra, "-"], { input: body });
  return Object.fromEntries(out.toString().trim().split("\n").map((l) => l.split(/: (.*)/s).slice(0, 2)));
}

function hookgateVerify(scheme, secret, body, headers) {
  const args = ["verify", "--scheme", scheme, "--secret", secret, "--now", String(NOW)];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const run = spawnSync(HOOKGATE, [...args, "-"], { input: body });
  return { ok: run.status === 0, out: run.stdout.toString().trim() };
}

async function check(name, fn) {
  let ok = false;
  let detail = "";
  try {
    const outcome = await fn();
    ok = outcome === true || (typeof outcome === "object" && outcome !== null && outcome.ok === true);
    if (!ok) detail = `: ${JSON.stringify(outcome)}`;
  } catch (e) {
    detail = `: ${e}`;
  }
  results.push(ok);
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail}`);
}

// GitHub
const GH = "It's a Secret to Everybody";
await check("github: @octokit/webhooks-methods signs, hookgate verifies", async () =>
  hookgateVerify("github", GH, BODY, { "X-Hub-Signature-256": await octokitSign(GH, BODY) }));
await check("github: hookgate signs, @octokit/webhooks-methods verifies", async () =>
  octokitVerify(GH, BODY, hookgateSign("github", GH, BODY)["x-hub-signature-256"]));
// SendGrid's Event Webhook: ECDSA P-256. Its library (@sendgrid/eventwebhook) verifies;
// starkbank-ecdsa, which it is built on, signs as SendGrid does.
{
  const events = new sendgrid.EventWebhook();
  const pemBody = (pem) => pem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
  await check("sendgrid: starkbank-ecdsa signs, hookgate verifies", async () => {
    const key = new starkbank.PrivateKey(curves.prime256v1); // SendGrid's curve, P-256
    const signature = starkbank.Ecdsa.sign(String(NOW) + BODY, key).toBase64();
    return hookgateVerify("sendgrid", pemBody(key.publicKey().toPem()), BODY, {
      "X-Twilio-Email-Event-Webhook-Signature": signature, "X-Twilio-Email-Event-Webhook-Timestamp": String(NOW) });
  });
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" }).toString("base64");
  const spki = publicKey.export({ type: "spki", format: "der" }).toString("base64");
  const signed = hookgateSign("sendgrid", pkcs8, BODY);
  const verify = (body) => events.verifySignature(events.convertPublicKeyToECDSA(spki), body,
    signed["x-twilio-email-event-webhook-signature"], signed["x-twilio-email-event-webhook-timestamp"]);
  await check("sendgrid: hookgate signs, @sendgrid/eventwebhook verifies", async () => verify(BODY));
  await check("sendgrid: @sendgrid/eventwebhook refuses a changed body", async () => !verify(BODY + " "));
}
// Meta, Bitbucket and Jira send GitHub's `sha256=<hex HMAC-SHA256 of the body>`, in their own headers.
for (const [preset, header] of [["meta", "X-Hub-Signature-256"], ["bitbucket", "X-Hub-Signature"], ["jira", "X-Hub-Signature"]]) {
  await check(`${preset}: @octokit/webhooks-methods signs, hookgate verifies`, async () =>
    hookgateVerify(preset, GH, BODY, { [header]: await octokitSign(GH, BODY) }));
  await check(`${preset}: hookgate signs, @octokit/webhooks-methods verifies`, async () =>
    octokitVerify(GH, BODY, hookgateSign(preset, GH, BODY)[header.toLowerCase()]));
}

// Shopify: the library only verifies; its own test helper makes signatures.
const SHOPIFY_SECRET = "testApiSecretKey";
const shopify = shopifyApi({
  apiKey: "interop", apiSecretKey: SHOPIFY_SECRET, apiVersion: ApiVersion.October25 ?? Object.values(ApiVersion).at(-1),
  isEmbeddedApp: false, hostName: "hooks.example.com", logger: { level: 0 },
});
await check("shopify: @shopify/shopify-api test helper signs, hookgate verifies", async () =>
  hookgateVerify("shopify", SHOPIFY_SECRET, BODY, { "X-Shopify-Hmac-Sha256": getHmac(BODY, SHOPIFY_SECRET) }));
await check("shopify: hookgate signs, @shopify/shopify-api validates", async () => {
  const h = hookgateSign("shopify", SHOPIFY_SECRET, BODY);
  const rawRequest = new Request("https://hooks.example.com/webhooks", {
    method: "POST", body: BODY,
    headers: {
      "X-Shopify-Hmac-Sha256": h["x-shopify-hmac-sha256"], "X-Shopify-Webhook-Id": h["x-shopify-webhook-id"],
      "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "interop.myshopify.com", "X-Shopify-API-Version": "2025-10",
    },
  });
  const result = await shopify.webhooks.validate({ rawBody: BODY, rawRequest });
  return result.valid === true ? true : result;
});

await check("shopify: a signature made with another secret fails @shopify/shopify-api", async () => {
  const h = hookgateSign("shopify", "not-the-secret", BODY);
  const rawRequest = new Request("https://hooks.example.com/webhooks", {
    method: "POST", body: BODY,
    headers: {
      "X-Shopify-Hmac-Sha256": h["x-shopify-hmac-sha256"], "X-Shopify-Webhook-Id": "w1",
      "X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "interop.myshopify.com", "X-Shopify-API-Version": "2025-10",
    },
  });
  return (await shopify.webhooks.validate({ rawBody: BODY, rawRequest })).valid === false;
});

// Standard Webhooks (TypeScript library)
const SW = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
await check("standard-webhooks (npm): library signs, hookgate verifies", async () => {
  const sig = new Webhook(SW).sign("msg_n", new Date(NOW * 1000), BODY);
  return hookgateVerify("standard-webhooks", SW, BODY, { "webhook-id": "msg_n", "webhook-timestamp": String(NOW), "webhook-signature": sig });
});
await check("standard-webhooks (npm): hookgate signs, library verifies", async () => {
  new Webhook(SW).verify(BODY, hookgateSign("standard-webhooks", SW, BODY));
  return true;
});

// Stripe (Node)
const stripe = new Stripe("sk_test_interop");
const STRIPE_SECRET = "whsec_node_interop";
await check("stripe (node): generateTestHeaderString signs, hookgate verifies", async () =>
  hookgateVerify("stripe", STRIPE_SECRET, BODY, { "Stripe-Signature": stripe.webhooks.generateTestHeaderString({ payload: BODY, secret: STRIPE_SECRET, timestamp: NOW }) }));
await check("stripe (node): hookgate signs, constructEvent verifies", async () => {
  const event = stripe.webhooks.constructEvent(BODY, hookgateSign("stripe", STRIPE_SECRET, BODY)["stripe-signature"], STRIPE_SECRET);
  return event.event === "application.scored";
});

const passed = results.filter(Boolean).length;
console.log(`interop-node: ${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length ? 0 : 1);
