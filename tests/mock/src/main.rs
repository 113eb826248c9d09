//! `mana-llm-mock [--listen 127.0.0.1:PORT]`: runs the mock provider with default replies
//! until killed, after printing `listening on http://ADDR`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use mana_llm_mock::MockProvider;

const USAGE: &str = "usage: mana-llm-mock [--listen 127.0.0.1:PORT]";

fn parse_args() -> Result<Option<SocketAddr>, String> {
    let mut listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => args
                .next()
                .ok_or_else(|| format!("--listen needs an address; {USAGE}"))?,
            other => match other.strip_prefix("--listen=") {
                Some(v) => v.to_owned(),
                None => return Err(format!("unknown argument {other:?}; {USAGE}")),
            },
        };
        listen = value
            .parse()
            .map_err(|e| format!("bad --listen address {value:?}: {e}"))?;
    }
    Ok(Some(listen))
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mana-llm-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mock = match MockProvider::start_on(addr).await {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("mana-llm-mock: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", mock.url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("mana-llm-mock: cannot wait for Ctrl-C: {e}");
        std::future::pending::<()>().await;
    }
    ExitCode::SUCCESS
}
