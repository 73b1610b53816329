//! Bodies stream both ways in-process, over h2c as well as HTTP/1.1 (flow control on both
//! hops). The memory bound of large bodies is measured on the real binary in `tests/cli.rs`.

use http::Version;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, generated};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_uploads_and_downloads_stream_through_complete() {
    let h1 = TestUpstream::http1().await;
    let h2 = TestUpstream::h2c().await;
    let yaml = format!(
        "upstreams:\n  one:\n    endpoints: [\"{}\"]\n    retry: {{ attempts: 1 }}\n  two:\n    endpoints: [\"{}\"]\n    protocol: http2\n",
        h1.url(),
        h2.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    for (name, up) in [("one", &h1), ("two", &h2)] {
        up.set_default(Reply::status(201));
        let req = request("PUT", &proxy.url("/upload"))
            .header("x-rampart-upstream", name)
            .body(generated(8 * MIB))
            .unwrap();
        let resp = client::send_h2c(req).await.unwrap();
        assert_eq!(resp.status(), 201, "{name}");
        assert_eq!(up.last().body_len, 8 * MIB, "{name}: upload complete");

        up.set_default(Reply::stream(8 * MIB + 7));
        let req = request("GET", &proxy.url("/download"))
            .header("x-rampart-upstream", name)
            .body(crate::support::empty())
            .unwrap();
        let resp = client::send_h2c(req).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(
            client::body_len(resp).await.unwrap(),
            8 * MIB + 7,
            "{name}: download complete"
        );
    }
    // The default retry policy buffers at most max_body_bytes for replay: a PUT larger
    // than that still arrives whole (streamed, not retried).
    let req = request("PUT", &proxy.url("/upload"))
        .header("x-rampart-upstream", "two")
        .body(generated(2 * MIB))
        .unwrap();
    h2.set_default(Reply::status(201));
    assert_eq!(client::send(req).await.unwrap().status(), 201);
    assert_eq!(h2.last().body_len, 2 * MIB);
}
