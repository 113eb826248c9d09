//! `mana-llm aliases …` against a running control plane: output, and one clear line and a
//! meaningful exit code for every error.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

const TOKEN: &str = "cli-SECRET-token";
const V1: &str = "aliases:\n  mana/a: {description: first, chain: [echo/one]}\n";
const V2: &str = "aliases:\n  mana/a: {description: first, chain: [echo/two, echo/one]}\n  mana/b: {chain: [echo/b]}\n";

struct Cli {
    url: String,
    token: &'static str,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        output_within(
            Command::new(BINARY)
                .arg("aliases")
                .args(args)
                .args(["--url", &self.url])
                .env("MANA_LLM_ADMIN_TOKEN", self.token)
                .env("NO_COLOR", "1"),
            Duration::from_secs(30),
        )
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn start() -> (Gateway, Cli) {
    let aliases = temp_file("aliases.yaml", V1);
    let cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start();
    let cli = Cli {
        url: cp.url.clone(),
        token: TOKEN,
    };
    (cp, cli)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_running_control_plane() {
    let (_cp, cli) = start();
    let v2 = temp_file("v2.yaml", V2);
    let v2 = v2.to_str().unwrap();
    tokio::task::block_in_place(|| {
        let push = cli.run(&["push", v2]);
        let (out, err) = text(&push);
        assert!(push.status.success(), "{out}{err}");
        assert!(out.contains("version 2"), "{out}");

        let again = cli.run(&["push", v2]);
        assert!(again.status.success());
        assert!(text(&again).0.contains("unchanged"), "{}", text(&again).0);

        let list = cli.run(&["list"]);
        let (out, _) = text(&list);
        assert!(list.status.success());
        assert!(out.contains("VERSION") && out.lines().count() >= 3, "{out}");

        let show = cli.run(&["show"]);
        let (out, _) = text(&show);
        assert!(out.contains("mana/b") && out.contains("echo/two"), "{out}");

        let diff = cli.run(&["diff", "1", "2"]);
        let (out, _) = text(&diff);
        assert!(diff.status.success());
        assert!(out.contains("+ mana/b"), "{out}");
        assert!(out.contains("~ mana/a"), "{out}");

        let rollback = cli.run(&["rollback", "1"]);
        let (out, err) = text(&rollback);
        assert!(rollback.status.success(), "{out}{err}");
        assert!(out.contains("version 3"), "{out}");

        let history = cli.run(&["history"]);
        let (out, _) = text(&history);
        assert!(
            out.contains("rolled back") && out.contains("restoring version 1"),
            "{out}"
        );

        let json = cli.run(&["list", "--json"]);
        let parsed: serde_json::Value =
            serde_json::from_slice(&json.stdout).expect("--json prints JSON");
        assert_eq!(parsed["versions"].as_array().unwrap().len(), 3);

        let reload = cli.run(&["reload"]);
        assert!(reload.status.success(), "{:?}", text(&reload));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_clear_line_and_an_exit_code() {
    let (_cp, cli) = start();
    let invalid = temp_file(
        "bad.yaml",
        "aliases:\n  fast: {chain: [x]}\n  mana/y: {chain: []}\n",
    );
    let v2 = temp_file("v2.yaml", V2);
    tokio::task::block_in_place(|| {
        let bad = cli.run(&["push", invalid.to_str().unwrap()]);
        let (_, err) = text(&bad);
        assert_eq!(bad.status.code(), Some(1), "{err}");
        assert!(
            err.contains("must start with 'mana/'") && err.contains("chain must not be empty"),
            "every error listed: {err}"
        );

        let stale = cli.run(&["push", v2.to_str().unwrap(), "--expected-version", "9"]);
        assert_eq!(stale.status.code(), Some(5), "{:?}", text(&stale));

        let missing = cli.run(&["show", "99"]);
        assert_eq!(missing.status.code(), Some(6), "{:?}", text(&missing));

        let wrong = Cli {
            url: cli.url.clone(),
            token: "nope",
        }
        .run(&["list"]);
        let (_, err) = text(&wrong);
        assert_eq!(wrong.status.code(), Some(4), "{err}");
        assert!(
            err.contains("MANA_LLM_ADMIN_TOKEN") && !err.contains(TOKEN),
            "{err}"
        );

        let down = Cli {
            url: "http://127.0.0.1:1".to_owned(),
            token: TOKEN,
        }
        .run(&["list"]);
        let (_, err) = text(&down);
        assert_eq!(down.status.code(), Some(3), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

        let no_file = cli.run(&["push", "/nonexistent/aliases.yaml"]);
        assert_eq!(no_file.status.code(), Some(1));
    });
}

#[test]
fn validate_checks_a_file_offline() {
    let good = temp_file("good.yaml", V2);
    let ok = output_within(
        Command::new(BINARY)
            .args(["aliases", "validate"])
            .arg(&good),
        Duration::from_secs(30),
    );
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 aliases"));
    let bad = temp_file(
        "bad.yaml",
        "aliases:\n  fast: {chain: [x]}\n  mana/y: {chain: []}\n",
    );
    let failed = output_within(
        Command::new(BINARY).args(["aliases", "validate"]).arg(&bad),
        Duration::from_secs(30),
    );
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("2 error(s)"), "{err}");
}
