//! Tests of the publish registry in `pipeline` (name ownership across publishes).

use super::*;

fn request(app: &str, stream: &str) -> PublishRequest {
    PublishRequest {
        connection_id: 1,
        peer: "127.0.0.1:40000".parse().unwrap(),
        app: app.into(),
        stream: stream.into(),
        params: Vec::new(),
        tc_url: None,
        kick: CancellationToken::new(),
    }
}

fn app() -> App {
    let cfg = Arc::new(Config::default());
    let store = hls_edge::Store::new(
        edge_config(&cfg),
        Arc::new(hls_edge::TokioClock::new(std::time::SystemTime::UNIX_EPOCH)),
    );
    App::new(cfg.clone(), store, Authorizer::new(&cfg.auth).unwrap())
}

/// The window between one publish releasing its name and its sink being dropped: a new
/// publisher of the same name that registers there must keep its entry when the old sink
/// goes (before the fix, the old sink's `Drop` removed the new publisher's entry: the API
/// kick answered 404 and a third publisher was let in).
#[tokio::test]
async fn an_old_sink_never_releases_a_newer_publishers_name() {
    let app = app();
    let first = app.authorize(request("live", "s")).await.ok().unwrap();
    // The name is released (as `on_close` does) while the first sink is still alive.
    release_registration(&app.live, &first.key, first.registration);
    let second = app.authorize(request("live", "s")).await.ok().unwrap();
    drop(first);
    assert!(app.kick("live", "s"), "the second publisher lost its entry");
    assert!(
        app.authorize(request("live", "s")).await.is_err(),
        "a third publisher was admitted next to the second"
    );
    drop(second);
    assert!(
        !app.kick("live", "s"),
        "the second sink released its own entry"
    );
    assert!(app.authorize(request("live", "s")).await.is_ok());
}
