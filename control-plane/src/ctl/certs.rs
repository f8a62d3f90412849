//! `outpostctl certs`: a service's TLS certificates (put, list, delete). The key file is read
//! and sent once; nothing prints it.

use std::path::PathBuf;

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::client::encode;
use super::table::{Table, cell};
use super::{Client, CtlError};

#[derive(Subcommand)]
pub enum CertsCmd {
    /// Upload or replace a certificate: the PEM chain (leaf first) and its private key. It is
    /// checked (key matches, chain builds, names cover the service's hosts, not expired),
    /// stored with the key encrypted, and every node serves it without a restart.
    Put {
        service: String,
        /// The certificate's name within the service (1 to 64 of a-z 0-9 _ -).
        name: String,
        /// PEM chain, leaf first.
        #[arg(long)]
        cert: PathBuf,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1).
        #[arg(long)]
        key: PathBuf,
        /// A host of the service it is for (repeatable); default: every host it covers.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
    },
    /// A service's certificates, or every one the token may see (the operator: all).
    List { service: Option<String> },
    /// Delete a certificate: nodes stop serving it.
    Delete { service: String, name: String },
}

/// Runs a `certs` command.
pub async fn run(client: &Client, command: CertsCmd, json: bool) -> Result<String, CtlError> {
    let pretty = |body: &Value| format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default());
    let path = |service: &str, name: &str| format!("/v1/services/{}/certificates/{}", encode(service), encode(name));
    match command {
        CertsCmd::Put { service, name, cert, key, hosts } => {
            let read = |file: &PathBuf| {
                std::fs::read_to_string(file).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))
            };
            let mut body = json!({"chain_pem": read(&cert)?, "key_pem": read(&key)?});
            if !hosts.is_empty() {
                body["hosts"] = json!(hosts);
            }
            let answer = client.send(Method::PUT, &path(&service, &name), Some(&body)).await?;
            let verb = if answer.status == http::StatusCode::CREATED { "created" } else { "replaced" };
            Ok(if json {
                pretty(&answer.body)
            } else {
                let b = &answer.body;
                format!(
                    "{service}/{name}: {verb}, version {} ({}; issuer {}; expires {}; sha256 {})\n",
                    cell(&b["version"]),
                    names(&b["names"]),
                    cell(&b["issuer"]),
                    cell(&b["not_after"]),
                    cell(&b["sha256"])
                )
            })
        }
        CertsCmd::List { service } => {
            let url = match &service {
                Some(service) => format!("/v1/services/{}/certificates", encode(service)),
                None => "/v1/certificates".to_owned(),
            };
            let answer = client.get(&url).await?;
            Ok(if json { pretty(&answer.body) } else { table(&answer.body) })
        }
        CertsCmd::Delete { service, name } => {
            client.send(Method::DELETE, &path(&service, &name), None).await?;
            Ok(if json {
                pretty(&json!({"service": service, "name": name, "deleted": true}))
            } else {
                format!("{service}/{name}: deleted\n")
            })
        }
    }
}

fn names(list: &Value) -> String {
    list.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
}

fn table(body: &Value) -> String {
    let mut t = Table::new(&["SERVICE", "NAME", "SOURCE", "NAMES", "ISSUER", "EXPIRES", "SHA256"]);
    for c in body["certificates"].as_array().into_iter().flatten() {
        let sha = cell(&c["sha256"]);
        t.row(vec![
            cell(&c["service"]),
            cell(&c["name"]),
            cell(&c["source"]),
            names(&c["names"]),
            cell(&c["issuer"]),
            cell(&c["not_after"]),
            sha.get(..16).unwrap_or(&sha).to_owned(),
        ]);
    }
    t.render()
}
