//! Command line: `hookgate run`, `hookgate check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "hookgate",
    version,
    about = "Webhook sidecar and edge gateway",
    long_about = "hookgate sits next to your app. Inbound, it verifies each webhook's signature, drops \
duplicates and rate-limits senders before the app sees a request. Outbound, it signs what your app \
sends and delivers it with retries.\n\nEverything is configured in one YAML file; see config.example.yaml.",
    after_help = "Examples:\n  hookgate check -c config.example.yaml\n  hookgate run -c config.example.yaml\n  hookgate --log-format json run -c /etc/hookgate/config.yaml"
)]
pub struct Cli {
    /// Log format: text for people, json for log pipelines. The level comes from HOOKGATE_LOG (default info).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "HOOKGATE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateway: the inbound proxy and the admin port (/healthz /readyz /metrics).
    #[command(
        long_about = "Start the gateway with the services the config file describes. SIGTERM stops it \
gracefully (listeners close, in-flight requests get server.grace_period); SIGINT stops it at once.",
        after_help = "Example:\n  REJENTO_SECRET=... hookgate run -c config.example.yaml"
    )]
    Run {
        /// The YAML config file. ${VAR} and ${VAR:-default} are taken from the environment.
        #[arg(short, long, env = "HOOKGATE_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Sign a payload the way a provider would, and print the headers (or a curl command).
    #[command(
        long_about = "Sign FILE (or stdin with -) with a scheme and print the headers a provider would send. \
With --curl URL, print a ready-to-paste curl command that sends the signed request. The delivery id \
defaults to a random one and the timestamp to now.",
        after_help = "Examples:\n  hookgate sign --scheme rejento --secret-env REJENTO_SECRET body.json\n  \
hookgate sign --scheme rejento --secret s --curl http://127.0.0.1:8000/hooks/rejento body.json\n  \
echo '{}' | hookgate sign --scheme stripe --secret whsec_x -"
    )]
    Sign {
        #[command(flatten)]
        scheme: SchemeArgs,
        /// Delivery id to sign (schemes that carry one). Default: a random msg_… id.
        #[arg(long)]
        id: Option<String>,
        /// Unix seconds to sign (schemes with timestamps). Default: now.
        #[arg(long)]
        timestamp: Option<u64>,
        /// Print a curl command that POSTs the signed body to this URL.
        #[arg(long, value_name = "URL")]
        curl: Option<String>,
        /// The payload file, or - for stdin.
        #[arg(value_name = "FILE")]
        file: String,
    },
    /// Check a received request's signature: prints `valid (secret #n)` or the reason.
    #[command(
        long_about = "Verify FILE (the raw body, or - for stdin) with the headers it came with. Prints \
`valid (secret #n)` and exits 0, or prints the reason with its stable code and exits 1.",
        after_help = "Example:\n  hookgate verify --scheme github --secret-env GH_SECRET \\\n    \
--header 'X-Hub-Signature-256: sha256=…' body.json"
    )]
    Verify {
        #[command(flatten)]
        scheme: SchemeArgs,
        /// A received header, `Name: value`; repeat for each.
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// Replay window for timestamped schemes, e.g. 5m.
        #[arg(long)]
        tolerance: Option<String>,
        /// The clock, in unix seconds. Default: now.
        #[arg(long)]
        now: Option<u64>,
        /// The raw body file, or - for stdin.
        #[arg(value_name = "FILE")]
        file: String,
    },
    /// Inspect, retry, replay and purge outbound deliveries (through the admin API).
    #[command(
        after_help = "Examples:\n  HOOKGATE_ADMIN_TOKEN=... hookgate deliveries list --state dead --endpoint acme\n  \
hookgate deliveries show msg_5f1c...\n  hookgate deliveries retry msg_5f1c...\n  \
hookgate deliveries replay acme --since 2h\n  hookgate deliveries replay --subscription sub_0190... --tenant acme\n  \
hookgate deliveries purge --subscription sub_0190... --json\n  hookgate deliveries purge --all"
    )]
    Deliveries {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Customers' subscriptions to event types: create, list, change, rotate secrets, test.
    #[command(
        long_about = "Manage subscriptions through the admin API. An event the app publishes once (POST /events on the outbound listener) is delivered to every enabled subscription of its tenant whose event types and filters match, each signed with its own secret. `create` and `rotate-secret` print the new secret once; nothing shows it again.",
        after_help = "Examples:
  hookgate subscriptions create --tenant acme --url https://hooks.acme.example/in \
    --event-type application.scored --event-type 'job.*' --scheme hiresscope
  hookgate subscriptions create --url https://x.example/h --event-type '*' --filter job_id=42
  hookgate subscriptions list --tenant acme --event-type application.scored
  hookgate subscriptions rotate-secret sub_0190... --overlap 24h
  hookgate subscriptions test sub_0190...
  hookgate subscriptions disable sub_0190... --json"
    )]
    Subscriptions {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: SubscriptionsCommand,
    },
    /// Reload the running hookgate's config file now (through the admin API).
    #[command(
        long_about = "Ask the running hookgate to read its config file now, as SIGHUP does, and print what \
happened. A config that fails its check is refused and the running one stays. A config that would lower the \
protection of any inbound path (a signed route removed or shadowed by a less protected one, verify changed to \
none, dedupe or a rate limit removed) is held: it prints the paths it would expose and exits 1, unless \
--allow-weaker says you mean it. The file's own changes are applied by hookgate itself once the file has \
stayed the same for server.reload_settle, and held the same way.",
        after_help = "Examples:\n  HOOKGATE_ADMIN_TOKEN=... hookgate reload\n  hookgate reload --allow-weaker"
    )]
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
        /// Apply the config even if it lowers the protection of some paths.
        #[arg(long)]
        allow_weaker: bool,
    },
    /// List outbound endpoints, and enable or disable one (through the admin API).
    #[command(
        after_help = "Examples:\n  hookgate endpoints list\n  hookgate endpoints disable acme"
    )]
    Endpoints {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: EndpointsCommand,
    },
    /// List the deliver: queue inbound routes, and pause or resume delivery to their app.
    #[command(
        long_about = "List the inbound routes with deliver: queue, with their backlog and whether they are \
paused, and pause or resume one (through the admin API). A paused route still verifies, dedupes and stores \
every webhook and acknowledges it; nothing is sent to its app until it is resumed. The pause is kept in the \
store: every replica and a restart keep it.",
        after_help = "Examples:\n  hookgate routes list\n  hookgate routes pause shopify\n  hookgate routes resume shopify"
    )]
    Routes {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// Give a customer (a tenant) a link to its own portal, or revoke its links.
    #[command(
        long_about = "Issue a signed, expiring link to a tenant's portal (/portal/, where the customer manages \
its own subscriptions and sees its own deliveries), or revoke every link the tenant was given until now, on \
every replica. Needs admin.portal.signing_key in the config. The link carries its token after #token=, which \
browsers never send to a server: hand it to the customer, or embed the page in your app.",
        after_help = "Examples:\n  hookgate portal link acme --ttl 1h\n  hookgate portal link acme --read-only --ttl 7d\n  hookgate portal revoke acme"
    )]
    Portal {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: PortalCommand,
    },
    /// Follow and cancel bulk replays (the jobs POST /admin/deliveries/replay starts).
    #[command(
        long_about = "List the bulk replays this hookgate ran lately (newest first), show one's progress (replayed, \
skipped, running or done), or cancel one. A job lives in the process that runs it: ask the replica that took the \
replay.",
        after_help = "Examples:\n  hookgate jobs list\n  hookgate jobs show job_3f2a...\n  hookgate jobs cancel job_3f2a..."
    )]
    Jobs {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Seal everything the store keeps with a new key, so that the old one can go.
    #[command(
        long_about = "Rotate the store's encryption key (store.encryption) while traffic flows. First put the new \
key first in store.encryption.keys, keep the old one after it, and restart (or roll) every replica. Then \
`rotate-key` seals every subscription, queued message and delivery-history row anew with the new key, in the \
background and a page at a time, shows its progress, and at the end moves the store's key check to the new key. \
From then on the old key can leave the list: a start without it is no longer refused. A value that does not \
open is left as it is and fails the rotation (the key check stays), with its id in hookgate's log.",
        after_help = "Examples:\n  hookgate store rotate-key\n  hookgate store rotate-key --no-wait\n  hookgate store status"
    )]
    Store {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Serve the Kubernetes admission webhook that injects the hookgate sidecar into pods.
    #[command(
        long_about = "Serve a mutating admission webhook (admission.k8s.io/v1) over TLS. Pods annotated \
hookgate.io/inject: \"true\" get hookgate as a native sidecar with its config from the ConfigMap named by \
hookgate.io/config (key hookgate.yaml) and secrets from the Secret named by hookgate.io/secrets, mounted at \
/etc/hookgate/secrets. hookgate.io/app-port, inbound-port, outbound-port and admin-port (defaults 8080, 8000, \
9090, 9901) reach the config as ${HOOKGATE_APP_PORT}, ${HOOKGATE_INBOUND_PORT}... Other pods, pods already \
injected and other kinds pass unchanged. deploy/kubernetes/injector.yaml installs it.",
        after_help = "Example:\n  hookgate inject --listen 0.0.0.0:8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key \\\n    --image ghcr.io/hookgate/hookgate:0.1.0"
    )]
    Inject {
        /// Address to serve HTTPS on.
        #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
        listen: String,
        /// PEM certificate chain the API server trusts (the webhook's caBundle).
        #[arg(long, value_name = "FILE")]
        tls_cert: PathBuf,
        /// PEM private key of the certificate.
        #[arg(long, value_name = "FILE")]
        tls_key: PathBuf,
        /// The sidecar image to inject.
        #[arg(long, env = "HOOKGATE_IMAGE", default_value = concat!("ghcr.io/hookgate/hookgate:", env!("CARGO_PKG_VERSION")))]
        image: String,
    },
    /// The providers hookgate verifies by name: `list` them, or `show` one as a ready route.
    #[command(
        long_about = "Every preset `verify.scheme` takes: the provider, the header its signature \
comes in and what it signs, and the header of its delivery id (what `dedupe: { id: scheme }` reads). \
`show NAME` prints a route for it to paste under inbound.routes, with its secret from the environment. \
A provider that is not listed can be described with `scheme: hmac` (docs: Inbound).",
        after_help = "Examples:\n  hookgate schemes list\n  hookgate schemes show github >> routes.yaml"
    )]
    Schemes {
        #[command(subcommand)]
        command: SchemesCommand,
    },
    /// Validate a config file and list every problem in it, with line, column and key.
    #[command(
        long_about = "Validate a config file without starting anything. Exits 0 if it is valid; \
otherwise prints every problem as FILE:LINE:COLUMN: KEY: MESSAGE and exits 78.",
        after_help = "Example:\n  hookgate check -c config.example.yaml && echo valid"
    )]
    Check {
        /// The YAML config file to validate.
        #[arg(short, long, env = "HOOKGATE_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
}

/// The scheme and secrets shared by `sign` and `verify`.
#[derive(Debug, clap::Args)]
pub struct SchemeArgs {
    /// Scheme name: standard-webhooks, svix, stripe, github, gitlab, slack, shopify, paddle, zoom,
    /// square, linear, intercom, twilio, rejento, hiresscope, tenzo, jobylon, bearer, basic.
    #[arg(long)]
    pub scheme: String,
    /// A secret; repeat for several (rotation). Prefer --secret-env to keep it out of shell history.
    #[arg(long)]
    pub secret: Vec<String>,
    /// The name of an environment variable holding a secret; repeatable.
    #[arg(long, value_name = "NAME")]
    pub secret_env: Vec<String>,
    /// The URL the sender signs (twilio, square). For sign, defaults to the --curl URL.
    #[arg(long)]
    pub url: Option<String>,
}

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin port's URL.
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    pub admin: String,
    /// The admin.token of the running hookgate.
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON answer instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Which deliveries a command means; `list`, `purge` and `replay` take the same filters,
/// so a purge or a replay touches exactly what the same `list` shows.
#[derive(Debug, Clone, clap::Args)]
pub struct DeliveryFilterArgs {
    /// Only this endpoint's deliveries (`subscriptions` for subscriptions').
    #[arg(long, conflicts_with = "route")]
    pub endpoint: Option<String>,
    /// Only the webhooks this `deliver: queue` inbound route stored for its app.
    #[arg(long)]
    pub route: Option<String>,
    /// Only this subscription's deliveries.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Only deliveries of this tenant's events.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only deliveries of events of this type.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only those accepted at or after this time: a time ago (`1h`, `30m`, `7d`), RFC 3339
    /// (`2026-12-04T09:00:00Z`) or unix milliseconds.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub since: Option<u64>,
    /// Only those accepted at or before this time, in the same forms as --since.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub until: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List queued and dead deliveries, or the delivered ones from the delivery history
    /// (`--state delivered`, newest first, a page at a time).
    List {
        #[command(flatten)]
        filter: DeliveryFilterArgs,
        /// pending (not attempted in this round), scheduled (waiting for a retry), dead or delivered
        #[arg(long)]
        state: Option<String>,
        /// Only the deliveries of this event (`evt_...`), stored or delivered.
        #[arg(long)]
        event_id: Option<String>,
        /// Only the message the app sent with this Idempotency-Key, stored or delivered.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Delivered ones: at most this many (1 to 1000; 100 by default).
        #[arg(long)]
        limit: Option<u32>,
        /// Delivered ones: the page after this place (the `next` a page ends with).
        #[arg(long, value_name = "NEXT")]
        after: Option<String>,
    },
    /// One delivery with every attempt: time, status, latency, the start of the answer.
    Show { id: String },
    /// Attempt one delivery again now, with a fresh round of attempts.
    Retry { id: String },
    /// Attempt the dead deliveries the filters name again (ENDPOINT is --endpoint).
    Replay {
        /// An endpoint, as --endpoint.
        #[arg(value_name = "ENDPOINT")]
        name: Option<String>,
        #[command(flatten)]
        filter: DeliveryFilterArgs,
        /// Replay every dead delivery: needed when no filter is given.
        #[arg(long)]
        all: bool,
    },
    /// Delete the dead deliveries the filters name, for good.
    Purge {
        #[command(flatten)]
        filter: DeliveryFilterArgs,
        /// Delete every dead delivery: needed when no filter is given.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Each endpoint, enabled or not, and why.
    List,
    /// Deliver to the endpoint again.
    Enable { name: String },
    /// Stop delivering to the endpoint; its messages wait in the queue.
    Disable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Print a link to the tenant's portal, and when it expires.
    Link {
        tenant: String,
        /// How long the link works: 1s to 30d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The link only shows: nothing can be changed with it.
        #[arg(long)]
        read_only: bool,
    },
    /// Refuse every link the tenant was given until now.
    Revoke { tenant: String },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The last replays, newest first.
    List,
    /// One job's progress.
    Show { id: String },
    /// Stop a running job where it is.
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SchemesCommand {
    /// Every preset: its provider, signature header, and delivery id header.
    List,
    /// A ready inbound route for one preset, in YAML.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Seal every stored value with the first key, then move the key check to it.
    RotateKey {
        /// Start the rotation and return; `hookgate store status` follows it.
        #[arg(long)]
        no_wait: bool,
    },
    /// The running rotation's progress, or how the last one ended.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Each deliver: queue route: paused or not, its backlog, its app's last answer.
    List,
    /// Stop sending the route's webhooks to its app; they are still verified and stored.
    Pause { name: String },
    /// Send the route's webhooks to its app again, the backlog first.
    Resume { name: String },
}

/// The fields `subscriptions create` and `update` share.
#[derive(Debug, clap::Args)]
pub struct SubscriptionFields {
    /// The receiver's URL (https://...); checked by the SSRF guard.
    #[arg(long)]
    pub url: Option<String>,
    /// An event type, `prefix.*` or `*`; repeat for several.
    #[arg(long = "event-type", value_name = "TYPE")]
    pub event_types: Vec<String>,
    /// A label the event must carry, `name=value` (a per-job subscription); repeatable.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
    /// Deliveries per period, such as 10/s.
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Deliveries in flight at once.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// A retry preset (standard-webhooks, stripe, rejento, ...).
    #[arg(long)]
    pub retry_preset: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Subscribe a URL to event types; prints its secret (or Ed25519 public key) once.
    Create {
        /// The customer the subscription belongs to (events carry it in Hookgate-Tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        fields: SubscriptionFields,
        /// The signature scheme deliveries carry (standard-webhooks, hiresscope, rejento, ...).
        #[arg(long, default_value = "standard-webhooks")]
        scheme: String,
        /// ed25519: Standard Webhooks' asymmetric v1a signatures.
        #[arg(long)]
        algorithm: Option<String>,
        /// The name of an environment variable holding the secret; default: a new one.
        #[arg(long, value_name = "NAME")]
        secret_env: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Subscriptions in creation order, a page at a time.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// Those that take events of this type.
        #[arg(long)]
        event_type: Option<String>,
        /// enabled or disabled
        #[arg(long)]
        state: Option<String>,
        /// Page size, 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// The `next` of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// One subscription, with its delivery counts.
    Show { id: String },
    /// Change a subscription's URL, event types, filters, limits or description.
    Update {
        id: String,
        #[command(flatten)]
        fields: SubscriptionFields,
    },
    /// Delete a subscription for good; its queued deliveries are not sent.
    Delete { id: String },
    /// A new secret; the old ones keep signing during the overlap.
    RotateSecret {
        id: String,
        /// How long the old secrets keep signing, such as 24h (the default) or 0s.
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Deliver to it again (a subscription disabled by hand or by a 410).
    Enable { id: String },
    /// Stop delivering to it; its deliveries wait until it is enabled.
    Disable { id: String },
    /// Send a signed test event now and print the receiver's answer.
    Test { id: String },
    /// Attempt the subscription's dead deliveries again.
    Replay {
        id: String,
        /// Only those accepted since this time: a time ago (`1h`), RFC 3339 or unix milliseconds.
        #[arg(long, value_parser = parse_time, value_name = "TIME")]
        since: Option<u64>,
    },
}

/// A time on the command line, as unix milliseconds: a time ago (`90s`, `30m`, `1h`,
/// `7d`, `1h30m`), an RFC 3339 date and time, or unix milliseconds as they are.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text:?} is too large for unix milliseconds"));
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(at.timestamp_millis())
            .map_err(|_| format!("{text:?} is before 1970"));
    }
    match crate::config::values::parse_duration(text) {
        Ok(ago) => Ok(crate::clock::now_ms().saturating_sub(ago.as_millis() as u64)),
        Err(_) => Err(format!(
            "{text:?} is not a time: give a time ago (1h, 30m, 7d), RFC 3339 (2026-12-04T09:00:00Z) or unix milliseconds"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn times_are_ago_rfc3339_or_milliseconds() {
        assert_eq!(parse_time("1764800000000"), Ok(1_764_800_000_000));
        assert_eq!(
            parse_time("2026-12-04T09:00:00Z"),
            Ok(1_796_374_800_000),
            "computed with: date -d 2026-12-04T09:00:00Z +%s%3N"
        );
        assert_eq!(
            parse_time("2026-12-04T10:00:00+01:00"),
            parse_time("2026-12-04T09:00:00Z")
        );
        let hour_ago = parse_time("1h").unwrap();
        let expected = crate::clock::now_ms() - 3_600_000;
        assert!(
            hour_ago.abs_diff(expected) < 5_000,
            "{hour_ago} vs {expected}"
        );
        for bad in ["yesterday", "", "-5", "2026-13-01T00:00:00Z"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}
