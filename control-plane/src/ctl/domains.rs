//! `outpostctl domains`: where each host's proof of control stands, a check now, and the
//! operator's decree and revocation.

use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::client::{Client, CtlError, encode};
use super::table::{Table, cell};

#[derive(Subcommand)]
pub enum DomainsCmd {
    /// A service's domains (or every domain the token may see, without SERVICE): status,
    /// method, last check and error, and the TXT record that proves each.
    List {
        service: Option<String>,
        /// Only this status: pending, verified, failing, lapsed (without SERVICE).
        #[arg(long)]
        status: Option<String>,
        /// Only this tenant's (operator, without SERVICE).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Look for a host's proof now (TXT _outpost-challenge.HOST, else the HTTP token); a proof
    /// makes it served on every node.
    Verify { service: String, host: String },
    /// Operator: verify a host by decree (never re-checked).
    Decree { service: String, host: String },
    /// Operator: take a host's verification back (not served until proven again).
    Revoke { service: String, host: String },
}

/// Runs a `domains` command.
pub async fn run(client: &Client, command: DomainsCmd, json: bool) -> Result<String, CtlError> {
    let pretty = |body: &Value| format!("{}\n", serde_json::to_string_pretty(body).unwrap_or_default());
    let one = |service: &str, host: &str, verb: &str| {
        format!("/v1/services/{}/domains/{}/{verb}", encode(service), encode(host))
    };
    let (answer, summary) = match command {
        DomainsCmd::List { service: Some(service), .. } => {
            let answer = client.get(&format!("/v1/services/{}/domains", encode(&service))).await?;
            return Ok(if json { pretty(&answer.body) } else { table(&answer.body) });
        }
        DomainsCmd::List { service: None, status, tenant } => {
            let mut query = Vec::new();
            if let Some(status) = status {
                query.push(format!("status={}", encode(&status)));
            }
            if let Some(tenant) = tenant {
                query.push(format!("tenant={}", encode(&tenant)));
            }
            let path =
                if query.is_empty() { "/v1/domains".to_owned() } else { format!("/v1/domains?{}", query.join("&")) };
            let answer = client.get(&path).await?;
            return Ok(if json { pretty(&answer.body) } else { table(&answer.body) });
        }
        DomainsCmd::Verify { service, host } => {
            let answer = client.send(Method::POST, &one(&service, &host, "check"), None).await?;
            let summary = format!("{host}: verified by {}\n", cell(&answer.body["domain"]["method"]));
            (answer, summary)
        }
        DomainsCmd::Decree { service, host } => (
            client.send(Method::POST, &one(&service, &host, "decree"), None).await?,
            format!("{host}: verified by decree\n"),
        ),
        DomainsCmd::Revoke { service, host } => (
            client.send(Method::POST, &one(&service, &host, "revoke"), None).await?,
            format!("{host}: revoked (pending)\n"),
        ),
    };
    Ok(if json { pretty(&answer.body) } else { summary })
}

fn table(body: &Value) -> String {
    let mut t = Table::new(&["HOST", "SERVICE", "STATUS", "METHOD", "CHECKED", "TXT NAME", "TXT VALUE", "LAST ERROR"]);
    for d in body["domains"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&d["host"]),
            cell(&d["service"]),
            cell(&d["status"]),
            cell(&d["method"]),
            cell(&d["checked_at"]),
            cell(&d["challenge"]["dns_name"]),
            cell(&d["challenge"]["dns_value"]),
            cell(&d["last_error"]),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_what_to_publish() {
        let body = serde_json::json!({"domains": [{"host": "www.shop.example", "service": "shop", "status": "pending",
            "method": null, "checked_at": null, "last_error": "no TXT record at _outpost-challenge.www.shop.example",
            "challenge": {"dns_name": "_outpost-challenge.www.shop.example", "dns_value": "abc"}}]});
        let text = table(&body);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST"), "{text}");
        assert!(
            lines[1].contains("pending") && lines[1].contains("_outpost-challenge.www.shop.example  abc"),
            "{text}"
        );
    }
}
