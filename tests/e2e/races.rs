//! Binding races through `cloudify-osb serve` (issue 13), on SQLite and on a DynamoDB table
//! on moto, with the Vault binder on OpenBao + MariaDB: 50 concurrent binds with one binding
//! ID make one lease and one MariaDB user and agree on the credentials; a bind racing the
//! instance's deprovision leaves no lease, user or Vault path behind. After the binds on
//! moto, the whole table is scanned for the generated passwords and the Vault token.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::world::{OwnMoto, StoreKind, World, contains, join_all, sqlite_bytes};

/// Every string in a DynamoDB JSON answer (attribute values of every item, decoded).
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Scans the whole table (every attribute of every item, page by page) through moto's API;
/// returns all string values and the number of items.
pub async fn scan_table(endpoint: &str, table: &str) -> (String, usize) {
    let http = reqwest::Client::new();
    let mut text = String::new();
    let mut items = 0;
    let mut start: Option<Value> = None;
    loop {
        let mut body = json!({"TableName": table});
        if let Some(k) = start.take() {
            body["ExclusiveStartKey"] = k;
        }
        let day = time::OffsetDateTime::now_utc().date();
        let reply: Value = http
            .post(endpoint)
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", "DynamoDB_20120810.Scan")
            // moto routes by the credential scope's service; it does not check signatures.
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/{:04}{:02}{:02}/us-east-1/dynamodb/\
                     aws4_request, SignedHeaders=host, Signature=0",
                    day.year(),
                    u8::from(day.month()),
                    day.day()
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers a Scan")
            .json()
            .await
            .expect("Scan JSON");
        let page = reply["Items"]
            .as_array()
            .unwrap_or_else(|| panic!("Scan answered {reply}"));
        items += page.len();
        strings(&reply["Items"], &mut text);
        match &reply["LastEvaluatedKey"] {
            Value::Object(k) if !k.is_empty() => start = Some(Value::Object(k.clone())),
            _ => break,
        }
    }
    (text, items)
}

async fn fifty_binds_with_one_id(kind: StoreKind<'_>) {
    let mut w = World::new("rb", kind).await;
    // Races, not time limits: a loaded machine and moto's one-request-at-a-time server
    // must not turn slow answers into 503s here.
    let serve = w.serve(&["--cloudify-timeout", "90s"]).await;
    let inst = format!("{}-i1", w.tag);
    w.provisioned(&serve, &inst).await;

    let answers = join_all((0..50).map(|_| serve.bind(&w, &inst, "b1"))).await;
    let mut created = 0;
    let mut busy = 0;
    let mut credentials = BTreeSet::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::CREATED => {
                created += 1;
                credentials.insert(body["credentials"].to_string());
            }
            StatusCode::OK => {
                credentials.insert(body["credentials"].to_string());
            }
            // While the first bind runs, the same PUT meets a binding being created (OSB
            // allows 422 ConcurrencyError); the platform retries it.
            StatusCode::UNPROCESSABLE_ENTITY if body["error"] == "ConcurrencyError" => busy += 1,
            other => panic!("a concurrent identical bind answered {other} {body}"),
        }
    }
    eprintln!(
        "50 identical binds: 201 x{created}, 200 x{}, 422 x{busy}",
        50 - created - busy
    );
    assert_eq!(created, 1, "exactly one bind creates the binding");
    for _ in 0..busy {
        let (status, body) = serve.bind(&w, &inst, "b1").await;
        assert_eq!(status, StatusCode::OK, "a retried bind: {body}");
        credentials.insert(body["credentials"].to_string());
    }
    assert_eq!(
        credentials.len(),
        1,
        "every answer has the same credentials"
    );
    let creds: Value = serde_json::from_str(credentials.first().expect("credentials")).unwrap();
    assert_eq!(
        w.login(&creds).as_deref(),
        Ok(format!("{}-row", w.tag).as_str())
    );
    let leases = w.leases().await;
    assert_eq!(leases.len(), 1, "one Vault lease: {leases:?}");
    assert_eq!(w.users().len(), 1, "one MariaDB user: {:?}", w.users());

    // No generated password, admin password or Vault token in the store.
    let password = creds["password"].as_str().expect("a password").to_owned();
    let secrets = [
        ("the generated password", password.as_str()),
        ("the MariaDB admin password", w.admin_password.as_str()),
        ("the Vault token", w.bao.token.as_str()),
        ("the broker password", crate::world::PASSWORD),
    ];
    if let Some(endpoint) = &w.endpoint {
        let table = w.store.trim_start_matches("dynamodb:");
        let (text, items) = scan_table(endpoint, table).await;
        assert!(
            items >= 3,
            "the scan read the catalog, instance and binding: {items}"
        );
        assert!(text.contains(&inst), "the scan sees the instance");
        for (what, secret) in secrets {
            assert!(!text.contains(secret), "the DynamoDB table holds {what}");
        }
        eprintln!("DynamoDB scan: {items} items, no secret");
    } else {
        let bytes = sqlite_bytes(&w.dir.path().join("broker.db"));
        assert!(contains(&bytes, &inst), "the store file holds the instance");
        for (what, secret) in secrets {
            assert!(!contains(&bytes, secret), "the SQLite store holds {what}");
        }
    }
    let log = serve.log_text();
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "the log holds {what}");
    }

    let (status, body) = serve.unbind(&w, &inst, "b1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(w.leases().await.is_empty(), "unbind revoked the lease");
    assert!(w.users().is_empty(), "unbind dropped the user");
    assert!(w.login(&creds).is_err(), "the credentials stop working");
    serve.deprovision_until_gone(&w, &inst).await;
    assert_eq!(w.vault_paths_of(&inst).await, Vec::<String>::new());
    drop(serve);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_binds_with_one_binding_id_make_one_lease_and_one_user_on_sqlite() {
    fifty_binds_with_one_id(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_binds_with_one_binding_id_make_one_lease_and_one_user_on_moto() {
    fifty_binds_with_one_id(StoreKind::SharedMoto).await;
}

async fn bind_racing_deprovision(kind: StoreKind<'_>) {
    let mut w = World::new("rd", kind).await;
    // Races, not time limits: a loaded machine and moto's one-request-at-a-time server
    // must not turn slow answers into 503s here.
    let serve = w.serve(&["--cloudify-timeout", "90s"]).await;
    let mut outcomes = Vec::new();
    for round in 0..4u64 {
        let inst = format!("{}-r{round}", w.tag);
        w.provisioned(&serve, &inst).await;
        let ((bs, bb), (ds, db)) = tokio::join!(serve.bind(&w, &inst, "b1"), async {
            tokio::time::sleep(Duration::from_millis(25 * round)).await;
            serve.deprovision(&w, &inst).await
        });
        for (what, status, body) in [("bind", bs, &bb), ("deprovision", ds, &db)] {
            assert!(
                !status.is_server_error(),
                "round {round}: {what} during the race answered {status} {body}"
            );
        }
        outcomes.push(format!("bind {bs} / deprovision {ds}"));
        // The platform finishes the deprovision (retrying while the bind still runs).
        serve.deprovision_until_gone(&w, &inst).await;
        let (status, body) = serve
            .call(
                Method::GET,
                &format!("/v2/service_instances/{inst}/service_bindings/b1"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "round {round}: {body}");
        assert_eq!(
            w.leases().await,
            Vec::<String>::new(),
            "round {round}: no lease left"
        );
        assert_eq!(
            w.users(),
            Vec::<String>::new(),
            "round {round}: no user left"
        );
        assert_eq!(
            w.vault_paths_of(&inst).await,
            Vec::<String>::new(),
            "round {round}: no Vault path of the instance left"
        );
        assert!(
            w.sim
                .deployment_ids(&format!("osb-{inst}"))
                .await
                .is_empty(),
            "round {round}: no deployment left"
        );
    }
    eprintln!("bind vs deprovision: {outcomes:?}");
    drop(serve);
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bind_racing_deprovision_leaves_no_lease_user_or_vault_path_on_sqlite() {
    bind_racing_deprovision(StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bind_racing_deprovision_leaves_no_lease_user_or_vault_path_on_moto() {
    let moto = OwnMoto::start().await;
    bind_racing_deprovision(StoreKind::Moto(&moto)).await;
}
