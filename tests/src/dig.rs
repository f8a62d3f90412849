//! Asking a control plane's DNS server with `dig` (Debian's dnsutils): the status and the
//! A records of one answer, for tests that only need "where does this client go".
//! (`tests/dns_failover.rs` keeps its own fuller parser of flags, TTLs and sections.)

use std::net::SocketAddr;
use std::time::Duration;

/// The status (`NOERROR`, ...) and the sorted A-record addresses of one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: String,
    pub ips: Vec<String>,
}

/// `A name` at `server` over UDP for a client in `subnet` (EDNS Client Subnet), no
/// recursion, one try of at most `timeout`.
pub async fn a_for(server: SocketAddr, name: &str, subnet: &str, timeout: Duration) -> anyhow::Result<Answer> {
    let mut command = std::process::Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg(name)
        .arg("A")
        .arg(format!("+subnet={subnet}"))
        .arg(format!("+time={}", timeout.as_secs().max(1)))
        .args(["+norecurse", "+tries=1", "+nocmd", "+nostats"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await?;
    let output = match output {
        Ok(output) => output,
        Err(e) => anyhow::bail!("running dig (Debian's dnsutils; `apt-get install dnsutils`): {e}"),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "dig {name} @{server}: {}\n{text}", output.status);
    Ok(parse(&text))
}

/// The header's status and the A records (the only lines not starting with `;`, besides
/// other records, which are skipped).
fn parse(text: &str) -> Answer {
    let mut answer = Answer::default();
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            answer.status = rest.split(',').next().unwrap_or_default().to_owned();
        } else if !line.starts_with(';') {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_name, _ttl, _class, "A", ip] = fields.as_slice() {
                answer.ips.push((*ip).to_owned());
            }
        }
    }
    answer.ips.sort();
    answer
}
