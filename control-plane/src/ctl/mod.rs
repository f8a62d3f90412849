//! `outpostctl`: the control plane's API from a shell, for operators and tenants. Every command
//! is one or a few API calls; the output is a short human summary or table, or the API's JSON
//! as is with `--json` (for scripts). The URL and token come from flags or `OUTPOST_URL` /
//! `OUTPOST_TOKEN`, so a token need not appear in shell history.

pub mod certs;
pub mod client;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use http::Method;
use serde_json::{Value, json};

use client::encode;
pub use client::{Client, CtlError};
use table::{Table, cell};

#[derive(Parser)]
#[command(
    name = "outpostctl",
    version,
    about = "Outpost control plane client: services, purges, functions, certificates, nodes, PoPs",
    long_about = "Outpost control plane client: services, purges, functions, certificates, nodes, PoPs.\n\n\
        Each command is one or a few calls to the control plane's API. The output is a short \
        summary or table, or the API's JSON as it came with --json (for scripts). The URL and \
        token come from --api-url and --token or from OUTPOST_URL and OUTPOST_TOKEN, so a token \
        need not appear in the shell's history or in ps. An operator token reaches every \
        tenant's services and the nodes and PoPs; a tenant token its own services only.",
    after_long_help = AFTER_LONG_HELP,
    after_help = "Run with --help for examples, exit status and environment."
)]
pub struct Cli {
    /// The control plane's API URL.
    #[arg(long = "api-url", env = "OUTPOST_URL", default_value = "http://127.0.0.1:7400", global = true)]
    pub url: String,
    /// Bearer token (operator or tenant).
    #[arg(long, env = "OUTPOST_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up on a request after this long (a purge with --wait waits at most --timeout more).
    #[arg(long, default_value = "30s", value_parser = duration, global = true)]
    pub request_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

/// `--help`'s closing sections, as a man page has them.
const AFTER_LONG_HELP: &str = "Examples:
  export OUTPOST_URL=https://control.cdn.example OUTPOST_TOKEN=$(cat ~/.outpost-token)
  outpostctl services put shop shop.toml            # create or replace from a [[services]] table
  outpostctl services list
  outpostctl purge shop --url https://shop.example/a.css --wait
  outpostctl purge shop --tag product-42 --soft
  outpostctl functions deploy shop auth.wasm --activate
  outpostctl certs put shop www --cert fullchain.pem --key key.pem
  outpostctl pops drain fra                         # DNS steers clients to the next PoP
  outpostctl --json services get shop              # the API's JSON, for scripts

Exit status:
  0  the API answered with success
  1  the API answered with an error (its code and message on stderr), or it could not be reached
  2  bad arguments, or a request that could not be made (a file not read, an invalid URL)

Environment:
  OUTPOST_URL    the API URL (--api-url); default http://127.0.0.1:7400
  OUTPOST_TOKEN  the bearer token (--token)";

#[derive(Subcommand)]
pub enum Command {
    /// Service configs.
    #[command(subcommand)]
    Services(ServicesCmd),
    /// Purge a service's cached objects on every node.
    Purge(PurgeArgs),
    /// A purge's progress: which nodes and PoPs have applied it.
    PurgeStatus {
        /// The id `purge` printed.
        id: String,
    },
    /// A service's edge functions: deploy, list, activate, roll back.
    #[command(subcommand)]
    Functions(FunctionsCmd),
    /// The nodes following the control plane (operator).
    #[command(subcommand)]
    Nodes(NodesCmd),
    /// Points of presence: health, drain and restore (operator).
    #[command(subcommand)]
    Pops(PopsCmd),
    /// A service's TLS certificates: put, list, delete.
    #[command(subcommand)]
    Certs(certs::CertsCmd),
}

#[derive(Subcommand)]
pub enum ServicesCmd {
    /// Every service the token may see.
    List {
        /// Only this tenant's (operator).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One service's record and config.
    Get { id: String },
    /// Create or replace a service from a file with the fields of a [[services]] table
    /// (TOML, or JSON when the name ends in .json).
    Put {
        id: String,
        file: PathBuf,
        /// The owner of a new service (operator tokens).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a service: nodes stop serving it.
    Delete { id: String },
}

#[derive(Args)]
pub struct PurgeArgs {
    /// The service.
    pub service: String,
    /// A URL to purge (repeatable): `https://shop.example/a.css` or `shop.example/a.css`.
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Every URL under this prefix (repeatable).
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// Every object tagged (Surrogate-Key / Cache-Tag) with this (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Everything the service has cached.
    #[arg(long)]
    pub all: bool,
    /// Mark stale instead of removing: served while revalidated, and on origin errors.
    #[arg(long)]
    pub soft: bool,
    /// Return when every expected node (live, or seen within nodes.offline_after) has applied it, with per-node and per-PoP times.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: the longest to wait (at most 60s).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Subcommand)]
pub enum FunctionsCmd {
    /// Upload a component (.wasm, built for wasm32-wasip2) as a new version of the service's
    /// function; nothing runs it until it is activated.
    Deploy {
        service: String,
        file: PathBuf,
        /// Activate the version once it is uploaded.
        #[arg(long)]
        activate: bool,
    },
    /// The service's versions, which is active, and the activation history.
    List { service: String },
    /// Make a version active: every node fetches, compiles and switches to it.
    Activate { service: String, version: u32 },
    /// Return to the version active before the current one.
    Rollback { service: String },
}

#[derive(Subcommand)]
pub enum NodesCmd {
    /// Every registered node: PoP, role, whether its stream is live, what it acknowledged.
    List,
    /// Deregister a node: it leaves DNS answers and purge progress. Refused while its stream
    /// is open, unless --force.
    Remove {
        id: String,
        /// Deregister even with the stream open (it ends the stream).
        #[arg(long)]
        force: bool,
    },
    /// Stop giving a node's address in DNS answers (it keeps following the control plane).
    Drain { id: String },
    /// Give a drained node's address in DNS answers again.
    Restore { id: String },
}

#[derive(Subcommand)]
pub enum PopsCmd {
    /// Every PoP with its health and drain state.
    List,
    /// Stop steering clients to a PoP (DNS answers move to the next nearest).
    Drain { pop: String },
    /// Steer clients to a drained PoP again.
    Restore { pop: String },
}

fn duration(text: &str) -> Result<Duration, String> {
    outpost_config::parse_duration(text)
}

/// Runs the command; the returned text is what goes to stdout.
pub async fn run(cli: Cli) -> Result<String, CtlError> {
    let timeout = match &cli.command {
        Command::Purge(p) if p.wait => cli.request_timeout + p.timeout,
        _ => cli.request_timeout,
    };
    let client = Client::new(&cli.url, cli.token.clone(), timeout)?;
    let json = cli.json;
    let render = |body: &Value, human: fn(&Value) -> String| {
        if json { format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default()) } else { human(body) }
    };
    match cli.command {
        Command::Services(ServicesCmd::List { tenant }) => {
            let services = list_services(&client, tenant.as_deref()).await?;
            Ok(render(&Value::Array(services), services_table))
        }
        Command::Services(ServicesCmd::Get { id }) => {
            let answer = client.get(&format!("/v1/services/{}", encode(&id))).await?;
            Ok(render(&answer.body, service_detail))
        }
        Command::Services(ServicesCmd::Put { id, file, tenant }) => {
            let config = read_service_file(&file)?;
            let mut path = format!("/v1/services/{}", encode(&id));
            if let Some(tenant) = tenant {
                path.push_str(&format!("?tenant={}", encode(&tenant)));
            }
            let answer = client.send(Method::PUT, &path, Some(&config)).await?;
            let verb = if answer.status == http::StatusCode::CREATED { "created" } else { "updated" };
            Ok(if json {
                render(&answer.body, |_| String::new())
            } else {
                format!("{id}: {verb}, version {}\n", cell(&answer.body["version"]))
            })
        }
        Command::Services(ServicesCmd::Delete { id }) => {
            let answer = client.send(Method::DELETE, &format!("/v1/services/{}", encode(&id)), None).await?;
            Ok(render(&answer.body, |b| format!("{}: deleted (event {})\n", cell(&b["id"]), cell(&b["seq"]))))
        }
        Command::Purge(args) => {
            let body = json!({
                "urls": args.urls, "prefixes": args.prefixes, "tags": args.tags,
                "all": args.all, "soft": args.soft,
            });
            let mut path = format!("/v1/services/{}/purge", encode(&args.service));
            if args.wait {
                path.push_str(&format!("?wait=true&timeout={}ms", args.timeout.as_millis()));
            }
            let mut answer = client.send(Method::POST, &path, Some(&body)).await?;
            // `202` names only the purge; the summary names the service too.
            if !json && answer.body["service"].is_null() {
                answer.body["service"] = Value::String(args.service);
            }
            Ok(render(&answer.body, purge_summary))
        }
        Command::PurgeStatus { id } => {
            let answer = client.get(&format!("/v1/purges/{}", encode(&id))).await?;
            Ok(render(&answer.body, purge_summary))
        }
        Command::Functions(command) => functions(&client, command, json).await,
        Command::Nodes(command) => nodes(&client, command, json).await,
        Command::Certs(command) => certs::run(&client, command, json).await,
        Command::Pops(PopsCmd::List) => {
            let answer = client.get("/v1/pops").await?;
            Ok(render(&answer.body, pops_table))
        }
        Command::Pops(PopsCmd::Drain { pop }) => {
            let answer = client.send(Method::POST, &format!("/v1/pops/{}/drain", encode(&pop)), None).await?;
            Ok(render(&answer.body, |b| format!("{}: drained\n", pop_name(b))))
        }
        Command::Pops(PopsCmd::Restore { pop }) => {
            let answer = client.send(Method::POST, &format!("/v1/pops/{}/restore", encode(&pop)), None).await?;
            Ok(render(&answer.body, |b| format!("{}: restored\n", pop_name(b))))
        }
    }
}

/// The `nodes` commands.
async fn nodes(client: &Client, command: NodesCmd, json: bool) -> Result<String, CtlError> {
    let pretty = |body: &Value| format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default());
    let (answer, what) = match command {
        NodesCmd::List => {
            let answer = client.get("/v1/nodes").await?;
            return Ok(if json { pretty(&answer.body) } else { nodes_table(&answer.body) });
        }
        NodesCmd::Remove { id, force } => {
            let path = format!("/v1/nodes/{}{}", encode(&id), if force { "?force=true" } else { "" });
            client.send(Method::DELETE, &path, None).await?;
            return Ok(if json { pretty(&json!({"id": id, "removed": true})) } else { format!("{id}: removed\n") });
        }
        NodesCmd::Drain { id } => {
            (client.send(Method::POST, &format!("/v1/nodes/{}/drain", encode(&id)), None).await?, "drained")
        }
        NodesCmd::Restore { id } => {
            (client.send(Method::POST, &format!("/v1/nodes/{}/restore", encode(&id)), None).await?, "restored")
        }
    };
    Ok(if json { pretty(&answer.body) } else { format!("{}: {what}\n", cell(&answer.body["id"])) })
}

/// The `functions` commands.
async fn functions(client: &Client, command: FunctionsCmd, json: bool) -> Result<String, CtlError> {
    let pretty = |body: &Value| format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default());
    let base = |service: &str| format!("/v1/services/{}/functions", encode(service));
    match command {
        FunctionsCmd::Deploy { service, file, activate } => {
            let bytes = std::fs::read(&file).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
            let body = Some(("application/wasm", bytes::Bytes::from(bytes)));
            let uploaded = client.send_raw(Method::POST, &base(&service), body).await?;
            let new = uploaded.status == http::StatusCode::CREATED;
            let mut out = if json {
                pretty(&uploaded.body)
            } else {
                let what = if new { "uploaded" } else { "already uploaded" };
                format!(
                    "{service}: {what} as version {} (sha256 {}, {} bytes)\n",
                    cell(&uploaded.body["version"]),
                    cell(&uploaded.body["sha256"]),
                    cell(&uploaded.body["size"])
                )
            };
            if activate {
                let version = cell(&uploaded.body["version"]);
                let path = format!("{}/{}/activate", base(&service), encode(&version));
                let record = client.send(Method::POST, &path, None).await?;
                out.push_str(&if json { pretty(&record.body) } else { activated(&record.body) });
            }
            Ok(out)
        }
        FunctionsCmd::List { service } => {
            let answer = client.get(&base(&service)).await?;
            Ok(if json { pretty(&answer.body) } else { functions_table(&answer.body) })
        }
        FunctionsCmd::Activate { service, version } => {
            let path = format!("{}/{version}/activate", base(&service));
            let record = client.send(Method::POST, &path, None).await?;
            Ok(if json { pretty(&record.body) } else { activated(&record.body) })
        }
        FunctionsCmd::Rollback { service } => {
            let record = client.send(Method::POST, &format!("{}/rollback", base(&service)), None).await?;
            Ok(if json { pretty(&record.body) } else { activated(&record.body) })
        }
    }
}

/// What an activation or rollback wrote: the service record with its function.
fn activated(record: &Value) -> String {
    format!(
        "{}: version {} active (sha256 {}; service version {})\n",
        cell(&record["id"]),
        cell(&record["function"]["version"]),
        cell(&record["function"]["sha256"]),
        cell(&record["version"])
    )
}

fn functions_table(body: &Value) -> String {
    let active = body["active"]["version"].as_u64();
    let mut t = Table::new(&["VERSION", "ACTIVE", "SHA256", "SIZE", "UPLOADED"]);
    for v in body["versions"].as_array().into_iter().flatten() {
        let mark = if v["version"].as_u64() == active && active.is_some() { "*" } else { "" };
        t.row(vec![
            cell(&v["version"]),
            mark.to_owned(),
            cell(&v["sha256"]),
            cell(&v["size"]),
            cell(&v["uploaded_at"]),
        ]);
    }
    format!("{}history: {}\n", t.render(), cell(&body["history"]))
}

/// Every page of `GET /v1/services`, bounded so a misbehaving server cannot loop us forever.
async fn list_services(client: &Client, tenant: Option<&str>) -> Result<Vec<Value>, CtlError> {
    const MAX_PAGES: usize = 10_000;
    let mut services = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = Vec::new();
        if let Some(tenant) = tenant {
            query.push(format!("tenant={}", encode(tenant)));
        }
        if let Some(after) = &after {
            query.push(format!("after={}", encode(after)));
        }
        let path =
            if query.is_empty() { "/v1/services".to_owned() } else { format!("/v1/services?{}", query.join("&")) };
        let page = client.get(&path).await?.body;
        if let Some(items) = page["services"].as_array() {
            services.extend(items.iter().cloned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(services),
        }
    }
    Err(CtlError::Transport(format!("GET /v1/services: more than {MAX_PAGES} pages")))
}

/// A service file as the API's JSON: TOML unless the name ends in `.json`.
fn read_service_file(file: &std::path::Path) -> Result<Value, CtlError> {
    let text = std::fs::read_to_string(file).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return serde_json::from_str(&text).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())));
    }
    let value: toml::Table = toml::from_str(&text).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    serde_json::to_value(value).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))
}

fn services_table(services: &Value) -> String {
    let mut t = Table::new(&["ID", "TENANT", "VERSION", "UPDATED", "HOSTS"]);
    for s in services.as_array().into_iter().flatten() {
        t.row(vec![
            cell(&s["id"]),
            cell(&s["tenant"]),
            cell(&s["version"]),
            cell(&s["updated_at"]),
            cell(&s["config"]["hosts"]),
        ]);
    }
    t.render()
}

fn service_detail(s: &Value) -> String {
    let config = serde_json::to_string_pretty(&s["config"]).unwrap_or_default();
    format!(
        "id:       {}\ntenant:   {}\nversion:  {}\nupdated:  {}\nconfig:\n{config}\n",
        cell(&s["id"]),
        cell(&s["tenant"]),
        cell(&s["version"]),
        cell(&s["updated_at"])
    )
}

fn purge_summary(p: &Value) -> String {
    let mut out = format!(
        "purge {} on {} (event {}): {}\n",
        cell(&p["id"]),
        cell(&p["service"]),
        cell(&p["seq"]),
        p["status"].as_str().unwrap_or("accepted")
    );
    if let Some(nodes) = p["nodes"].as_object().filter(|n| !n.is_empty()) {
        let mut t = Table::new(&["NODE", "POP", "LIVE", "APPLIED", "MS"]);
        for (id, n) in nodes {
            t.row(vec![id.clone(), cell(&n["pop"]), cell(&n["live"]), cell(&n["acked"]), cell(&n["ms"])]);
        }
        out.push_str(&t.render());
    }
    if let Some(pops) = p["pops"].as_object().filter(|n| !n.is_empty()) {
        let mut t = Table::new(&["POP", "NODES", "APPLIED", "MAX MS"]);
        for (pop, s) in pops {
            t.row(vec![pop.clone(), cell(&s["nodes"]), cell(&s["acked"]), cell(&s["max_ms"])]);
        }
        out.push_str(&t.render());
    }
    if let Some(pending) = p["pending"].as_array().filter(|n| !n.is_empty()) {
        out.push_str(&format!("pending: {}\n", cell(&Value::Array(pending.clone()))));
    }
    if let Some(offline) = p["offline"].as_array().filter(|n| !n.is_empty()) {
        out.push_str(&format!("offline (not waited for): {}\n", cell(&Value::Array(offline.clone()))));
    }
    out
}

fn nodes_table(body: &Value) -> String {
    let mut t = Table::new(&["NODE", "POP", "REGION", "ROLE", "LIVE", "ACKED", "ACKED AT", "FUNCTIONS"]);
    for n in body["nodes"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&n["id"]),
            cell(&n["pop"]),
            cell(&n["region"]),
            cell(&n["role"]),
            cell(&n["live"]),
            cell(&n["acked"]),
            cell(&n["acked_at"]),
            cell(&n["functions"]),
        ]);
    }
    format!("{}head: {}\n", t.render(), cell(&body["head"]))
}

fn pops_table(body: &Value) -> String {
    let mut t = Table::new(&["POP", "REGION", "HEALTHY", "DRAINED", "NODES", "SINCE"]);
    for p in body["pops"].as_array().into_iter().flatten() {
        let nodes = match &p["nodes"] {
            Value::Array(items) => items
                .iter()
                .map(|n| n["id"].as_str().map_or_else(|| cell(n), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => cell(other),
        };
        t.row(vec![
            cell(&pop_name_value(p)),
            cell(&p["region"]),
            cell(&p["healthy"]),
            cell(&p["drained"]),
            nodes,
            cell(&p["since"]),
        ]);
    }
    t.render()
}

fn pop_name_value(p: &Value) -> Value {
    if p["pop"].is_null() { p["id"].clone() } else { p["pop"].clone() }
}

fn pop_name(p: &Value) -> String {
    cell(&pop_name_value(p))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn functions_deploy_takes_a_file_and_may_activate() {
        let cli = Cli::try_parse_from(["outpostctl", "functions", "deploy", "shop", "f.wasm", "--activate"]);
        let Ok(Cli { command: Command::Functions(FunctionsCmd::Deploy { service, file, activate }), .. }) = cli else {
            panic!("not a deploy")
        };
        assert_eq!((service.as_str(), file, activate), ("shop", PathBuf::from("f.wasm"), true));
        assert!(
            Cli::try_parse_from(["outpostctl", "functions", "activate", "shop", "x"]).is_err(),
            "a version is a number"
        );
    }

    #[test]
    fn purge_flags_repeat() {
        let cli = Cli::try_parse_from([
            "outpostctl",
            "purge",
            "shop",
            "--url",
            "a.example/x",
            "--url",
            "a.example/y",
            "--tag",
            "t",
            "--wait",
        ])
        .expect("parses");
        let Command::Purge(p) = cli.command else { panic!("not a purge") };
        assert_eq!((p.urls.len(), p.tags.len(), p.wait, p.timeout), (2, 1, true, Duration::from_secs(10)));
    }
}
