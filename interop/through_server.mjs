// The npm half of through_server.py: GitHub and Shopify webhooks signed by the official
// libraries go through the running hookgate; the app must see only the valid ones.
import { sign } from "@octokit/webhooks-methods";
import { getHmac } from "@shopify/shopify-api/test-helpers";

const [base, receivedUrl] = process.argv.slice(2);
const body = JSON.stringify({ action: "opened", number: 7 });
let failures = 0;

async function seen() {
  return (await (await fetch(receivedUrl)).json()).length;
}

async function expect(name, path, headers, payload, status, reachesApp) {
  const before = await seen();
  const response = await fetch(base + path, { method: "POST", headers, body: payload });
  const arrived = (await seen()) - before;
  const ok = response.status === status && arrived === (reachesApp ? 1 : 0);
  if (!ok) failures += 1;
  console.log(`${ok ? "ok  " : "FAIL"} ${path}: ${name} -> ${response.status}, app saw ${arrived}`);
}

await expect("github valid", "/hooks/github", { "X-Hub-Signature-256": await sign("github-e2e", body) }, body, 200, true);
await expect("github wrong secret", "/hooks/github", { "X-Hub-Signature-256": await sign("other", body) }, body, 401, false);
await expect("github tampered", "/hooks/github", { "X-Hub-Signature-256": await sign("github-e2e", body) }, body + " ", 401, false);
await expect("shopify valid", "/hooks/shopify", { "X-Shopify-Hmac-Sha256": getHmac(body, "shopify-e2e") }, body, 200, true);
await expect("shopify wrong secret", "/hooks/shopify", { "X-Shopify-Hmac-Sha256": getHmac(body, "other") }, body, 401, false);
await expect("shopify tampered", "/hooks/shopify", { "X-Shopify-Hmac-Sha256": getHmac(body, "shopify-e2e") }, body + " ", 401, false);
process.exit(failures === 0 ? 0 : 1);
