//! Secrets never leave the real binary: a config with an admin token and a Redis password is
//! validated, served (debug logs on), queried through the admin API, reloaded (once refused),
//! and shut down; then every byte of stdout, stderr and every response is searched for them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::binary::{free_port, rampart, wait_for_port};
use crate::support::client::{self, request};
use crate::support::empty;

const TOKEN: &str = "tok-S3CRET-4821";
const REDIS_PASSWORD: &str = "redisPW-77133";
const START: Duration = Duration::from_secs(5);

fn config(listen: SocketAddr, admin: SocketAddr, redis_url: &str) -> String {
    format!(
        "listen: {listen}\nadmin:\n  listen: {admin}\n  token: \"${{ADMIN_TOKEN}}\"\nshutdown: {{ drain_delay: 0s, timeout: 2s }}\nupstreams:\n  svc:\n    endpoints: [\"http://127.0.0.1:{}\"]\n    hosts: [svc]\n    retry: {{ attempts: 2, backoff: {{ base: 1ms, max: 2ms }} }}\n    rate_limit:\n      rate: 1000/s\n      global: {{ redis: \"{redis_url}\", on_error: local }}\n",
        free_port()
    )
}

#[tokio::test]
async fn secrets_never_reach_logs_or_admin_answers() {
    let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let (listen, admin) = (addr(free_port()), addr(free_port()));
    // Nothing listens on the Redis port: connection errors are where URLs tend to leak.
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", free_port());
    let yaml = config(listen, admin, &redis_url);
    let mut seen = String::new();

    let validate = rampart(&["validate"])
        .config(&yaml)
        .env("ADMIN_TOKEN", TOKEN)
        .run(START)
        .await;
    assert!(validate.status.success(), "{}", validate.output);
    seen.push_str(&validate.output);

    let mut proc = rampart(&["run"])
        .config(&yaml)
        .env("ADMIN_TOKEN", TOKEN)
        .env("RAMPART_LOG", "debug")
        .env("RAMPART_LOG_FORMAT", "json")
        .spawn();
    proc.wait_for_line("rampart is serving", START).await;
    assert!(wait_for_port(listen, START).await);

    // Proxied requests whose tries fail (refused endpoint), an unknown host, a bad override.
    for (host, attempts) in [("svc", "2"), ("nowhere", "1"), ("svc", "x")] {
        let req = request("GET", &format!("http://{listen}/p"))
            .header("host", host)
            .header("x-rampart-attempts", attempts)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(empty())
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        seen.push_str(&format!("{:?}{}", resp.headers(), client::text(&resp)));
    }

    // Admin: with the token, with a wrong one, and a reload (then a refused one).
    let admin_call = |method: &str, path: &str, token: &str| {
        request(method, &format!("http://{admin}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap()
    };
    let config_view = client::collect(
        client::send(admin_call("GET", "/admin/config", TOKEN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(config_view.status(), 200);
    let view = client::json(&config_view);
    assert_eq!(view["admin"]["token"], "<redacted>");
    let redis = view["upstreams"][0]["rate_limit"]["global"]["redis"].to_string();
    assert!(redis.contains("<redacted>"), "{redis}");
    seen.push_str(client::text(&config_view));
    for (method, path, token) in [
        ("GET", "/admin/upstreams", TOKEN),
        ("GET", "/admin/upstreams/svc", TOKEN),
        ("GET", "/admin/config", "wrong"),
        ("POST", "/admin/reload", TOKEN),
    ] {
        let resp =
            client::collect(client::send(admin_call(method, path, token)).await.unwrap()).await;
        seen.push_str(&format!("{:?}{}", resp.headers(), client::text(&resp)));
    }
    let bad = yaml.replace("127.0.0.1:", "not-an-ip:");
    proc.write_config(&bad.replace(
        &format!(":{REDIS_PASSWORD}@"),
        &format!(":{REDIS_PASSWORD}@@"),
    ));
    let refused = client::collect(
        client::send(admin_call("POST", "/admin/reload", TOKEN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status(), 400);
    seen.push_str(client::text(&refused));

    proc.signal("TERM");
    assert_eq!(proc.wait_exit(START).await.code(), Some(0));
    let output = proc.output();
    // The run really logged: access events and the reload attempts are there.
    assert!(output.contains("\"upstream\":\"svc\""), "{output}");
    assert!(output.contains("reload"), "{output}");
    seen.push_str(&output);

    for secret in [TOKEN, REDIS_PASSWORD] {
        assert!(
            !seen.contains(secret),
            "{secret} leaked:\n{}",
            seen.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
