//! SCIM 2.0 provisioning: the independent conformance tools against the real server, and the
//! identity providers' flows (Okta's look-up-then-create, Entra's capitalised operations and
//! string booleans, deactivate and reactivate, group membership pushed by PATCH).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// An identity provider's view of the test server: the SCIM base and a token for it.
struct Idp {
    base: String,
    token: String,
    token_id: String,
    client: reqwest::Client,
}

impl Idp {
    async fn connect(t: &TestApp) -> Self {
        let res = t
            .post(
                &t.org("/scim-tokens"),
                &t.owner_token,
                &json!({"name": "Okta"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        assert!(body["secret"].as_str().unwrap().starts_with("axs_"));
        Self {
            // The test server's public URL is not its random port: use the address it listens on.
            base: t.url(&format!("/scim/v2/{}", t.org_id)),
            token: body["secret"].as_str().unwrap().to_owned(),
            token_id: body["id"].as_str().unwrap().to_owned(),
            client: t.client.clone(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        req.send().await.unwrap()
    }

    /// Sends and expects `status`, returning the body (SCIM JSON, or null for an empty body).
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        status: StatusCode,
    ) -> Value {
        let res = self.send(method.clone(), path, body).await;
        let got = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        if text.is_empty() {
            return Value::Null;
        }
        assert_eq!(
            ct.as_deref(),
            Some("application/scim+json"),
            "{method} {path}"
        );
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.expect(reqwest::Method::GET, path, None, StatusCode::OK)
            .await
    }

    async fn patch(&self, path: &str, ops: Value) -> Value {
        self.expect(
            reqwest::Method::PATCH,
            path,
            Some(&json!({"schemas": [PATCH_OP], "Operations": ops})),
            StatusCode::OK,
        )
        .await
    }
}

fn user_doc(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "externalId": format!("00u-{user_name}"),
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
        "password": "correct horse battery staple 42",
    })
}

async fn member(t: &TestApp, id: &str) -> Option<Value> {
    member_where(t, "user_id", id).await
}

/// The member (as the Owner lists them) whose `field` is `value`.
async fn member_where(t: &TestApp, field: &str, value: &str) -> Option<Value> {
    let page = json_of(t.get(&t.org("/members?limit=200"), &t.owner_token).await).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[field] == value)
        .cloned()
}

both_backends!(
    the_conformance_tools_pass_against_the_real_server,
    |b| async move {
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let python = scim_python();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scim/run_scim2_tester.py");
        // PyPI's scim2-tester: its whole check suite.
        let out = std::process::Command::new(&python)
            .arg(&script)
            .args([&idp.base, &idp.token])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "scim2-tester printed no report: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let results = report["results"].as_array().cloned().unwrap_or_default();
        let failed: Vec<&Value> = results
            .iter()
            .filter(|r| r["status"] != "SUCCESS")
            .collect();
        assert!(
            report["ok"] == true && failed.is_empty(),
            "scim2-tester: {} of {} checks did not succeed: {failed:#?} {}",
            failed.len(),
            results.len(),
            report["discovery_error"]
        );
        assert!(results.len() >= 80, "only {} checks ran", results.len());

        // PyPI's scim-sanity: its probes, in strict mode.
        let out = std::process::Command::new(python.parent().unwrap().join("scim-sanity"))
            .args(["probe", &idp.base, "--token", &idp.token])
            .args(["--i-accept-side-effects", "--strict", "--json-output"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "scim-sanity printed no report: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let s = &report["summary"];
        let bad: Vec<&Value> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "fail" || r["status"] == "error")
            .collect();
        assert!(
            s["failed"] == 0 && s["errors"] == 0 && bad.is_empty(),
            "scim-sanity (strict): {bad:#?}"
        );
        assert!(s["passed"].as_u64().unwrap() >= 28, "{s}");
        assert!(out.status.success());
    }
);

both_backends!(
    text_with_a_nul_character_is_refused_in_scim_format,
    |b| async move {
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let before = idp.get("/Users").await["totalResults"].clone();
        // An external id with U+0000 (PostgreSQL's text cannot hold it: a 500 there before).
        let mut doc = user_doc("jane@acme.example", "jane@acme.example");
        doc["externalId"] = json!("00u-\u{0}jane");
        let refused = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&doc),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(refused["scimType"], "invalidValue", "{refused}");
        let refused = idp
            .expect(
                reqwest::Method::GET,
                "/Users?filter=externalId%20eq%20%22a%00b%22",
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(refused["scimType"], "invalidValue", "{refused}");
        assert_eq!(idp.get("/Users").await["totalResults"], before);
        assert!(
            member_where(&t, "email", "jane@acme.example")
                .await
                .is_none()
        );
    }
);

both_backends!(
    okta_looks_up_creates_deactivates_and_reactivates,
    |b| async move {
        let t = spawn_app_with(b, Options::default()).await;
        let hook = Receiver::start().await;
        let res = t
        .post(
            &t.org("/webhooks"),
            &t.owner_token,
            &json!({"url": hook.url, "description": "idp", "events": ["user.created", "user.updated", "user.deleted"]}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let idp = Idp::connect(&t).await;

        // Okta first looks the person up; no match is an empty list, not a 404.
        let filter = "/Users?filter=userName%20eq%20%22jane%40acme.example%22";
        let found = idp.get(filter).await;
        assert_eq!(
            (found["totalResults"].as_u64(), found["Resources"].clone()),
            (Some(0), json!([]))
        );

        // Then creates them: 201, Location = meta.location, ETag = meta.version, no password.
        let res = idp
            .send(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("jane@acme.example", "jane@acme.example")),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let jane: Value = res.json().await.unwrap();
        assert_eq!(jane["meta"]["location"], location);
        assert_eq!(jane["meta"]["version"], etag);
        assert_eq!(jane["meta"]["resourceType"], "User");
        assert!(jane.get("password").is_none());
        assert_eq!(jane["externalId"], "00u-jane@acme.example");
        let id = jane["id"].as_str().unwrap().to_owned();
        // A read that leaves `meta` out of the body still has the resource's ETag.
        let res = idp
            .send(
                reqwest::Method::GET,
                &format!("/Users/{id}?excludedAttributes=meta"),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
        assert!(res.json::<Value>().await.unwrap().get("meta").is_none());
        // A method a resource does not take: 405 as a SCIM error, with the methods it takes.
        let res = idp.send(reqwest::Method::PUT, "/Users", None).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"].to_str().unwrap(), "GET, POST");
        let e = idp
            .expect(
                reqwest::Method::POST,
                &format!("/Users/{id}"),
                None,
                StatusCode::METHOD_NOT_ALLOWED,
            )
            .await;
        assert_eq!(
            e["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );

        // The lookup now finds them (also without regard to case), and userName stays unique.
        let found = idp
            .get("/Users?filter=userName%20eq%20%22JANE%40acme.example%22")
            .await;
        assert_eq!(found["totalResults"], 1);
        assert_eq!(found["Resources"][0]["id"], id.as_str());
        let dup = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("Jane@ACME.example", "other@acme.example")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(
            (dup["scimType"].as_str(), dup["status"].as_str()),
            (Some("uniqueness"), Some("409"))
        );

        // They are a member (User role) and can sign in with the password the IdP set.
        let m = member(&t, &id).await.expect("a member");
        assert_eq!(
            (
                m["role"].as_str(),
                m["email"].as_str(),
                m["name"].as_str(),
                m["active"].as_bool()
            ),
            (
                Some("user"),
                Some("jane@acme.example"),
                Some("Jane Doe"),
                Some(true)
            )
        );
        let session = t
            .login("jane@acme.example", "correct horse battery staple 42")
            .await;
        // An account the identity provider manages founds no organization of its own (owning
        // one would take its sign-in out of the provider's hands).
        problem(
            t.post(
                &t.url("/api/v1/orgs"),
                &session,
                &json!({"name": "Jane's side project"}),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        let key: Value = json_of(
            t.post(&t.org("/api-keys"), &session, &json!({"name": "laptop"}))
                .await,
        )
        .await;
        let key = key["secret"].as_str().unwrap().to_owned();
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &key).await.status(),
            StatusCode::OK
        );

        // Deactivation (Okta's PATCH without a path): sessions end, API keys stop, resources stay.
        let after = idp
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "replace", "value": {"active": false}}]),
            )
            .await;
        assert_eq!(after["active"], false);
        assert_ne!(after["meta"]["version"], jane["meta"]["version"]);
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &session).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &key).await.status(),
            StatusCode::UNAUTHORIZED
        );
        problem(
            t.login_response("jane@acme.example", "correct horse battery staple 42")
                .await,
            StatusCode::FORBIDDEN,
            "member_deactivated",
        )
        .await;
        assert_eq!(member(&t, &id).await.unwrap()["active"], false);
        let deactivated = t.audit("action=member.deactivated").await;
        assert_eq!(deactivated.len(), 1);
        assert_eq!(deactivated[0]["actor_type"], "scim_token");
        assert_eq!(deactivated[0]["actor_id"], idp.token_id.as_str());
        // The session it ended is on the record, in the deactivation's transaction.
        let revoked = t.audit("action=auth.session_revoked").await;
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(
            (
                revoked[0]["metadata"]["reason"].as_str(),
                revoked[0]["actor_id"].as_str(),
                revoked[0]["target_id"].as_str()
            ),
            (
                Some("member_deactivated"),
                Some(idp.token_id.as_str()),
                Some(id.as_str())
            )
        );
        assert_eq!(
            revoked[0]["seq"].as_i64().unwrap(),
            deactivated[0]["seq"].as_i64().unwrap() + 1
        );

        // Reactivation restores sign-in.
        let back = idp
            .patch(
                &format!("/Users/{id}"),
                json!([{"op": "replace", "path": "active", "value": true}]),
            )
            .await;
        assert_eq!(back["active"], true);
        t.login("jane@acme.example", "correct horse battery staple 42")
            .await;

        // A stale If-Match is refused; the current one is accepted.
        let stale = idp
            .client
            .put(format!("{}/Users/{id}", idp.base))
            .bearer_auth(&idp.token)
            .header("if-match", etag.as_str())
            .json(&user_doc("jane@acme.example", "jane@acme.example"))
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        // A body over the server's limit is refused in SCIM's error format too.
        let huge = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "x".repeat(2 * 1024 * 1024),
        });
        let too_large = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&huge),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
        assert_eq!(
            too_large["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(too_large["status"], "413");
        // Without a good token the body is not read: 401, however large.
        for token in [None, Some("scim_not-a-token")] {
            let mut anonymous = idp
                .client
                .post(format!("{}/Users", idp.base))
                .header("content-type", "application/scim+json")
                .body(huge.to_string());
            if let Some(token) = token {
                anonymous = anonymous.bearer_auth(token);
            }
            let res = anonymous.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        }

        // Removal: 204, then 404; the membership is gone.
        idp.expect(
            reqwest::Method::DELETE,
            &format!("/Users/{id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
        let gone = idp
            .expect(
                reqwest::Method::GET,
                &format!("/Users/{id}"),
                None,
                StatusCode::NOT_FOUND,
            )
            .await;
        assert_eq!(
            gone["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert!(member(&t, &id).await.is_none());

        // The same webhooks as the API: created, updated (twice), deleted.
        let got = hook.wait_for(4, 10).await;
        // Deliveries run in parallel, so they may arrive in any order.
        let mut kinds: Vec<String> = got
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "user.created",
                "user.deleted",
                "user.updated",
                "user.updated"
            ]
        );
        // Each as the event catalogue documents it.
        let types = json_of(
            t.get(&t.url("/api/v1/webhooks/event-types"), &t.owner_token)
                .await,
        )
        .await;
        for r in &got {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let ty = types
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == body["event"])
                .unwrap();
            assert_eq!(
                ty["emitted"], true,
                "{} is documented as emitted",
                body["event"]
            );
            crate::webhooks::assert_valid(&ty["schema"], &body);
        }
        let created = got
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .find(|v| v["event"] == "user.created")
            .unwrap();
        assert_eq!(
            (
                created["data"]["userId"].as_str(),
                created["data"]["email"].as_str(),
                created["data"]["via"].as_str()
            ),
            (Some(id.as_str()), Some("jane@acme.example"), Some("scim"))
        );
    }
);

both_backends!(
    entra_capitalised_operations_string_booleans_and_roles,
    |b| async move {
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let jane = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("jdoe", "jane@acme.example")),
                StatusCode::CREATED,
            )
            .await;
        let id = jane["id"].as_str().unwrap().to_owned();
        let path = format!("/Users/{id}");

        // Entra: "Replace", booleans as strings, a dotted attribute inside a path-less value.
        let u = idp
        .patch(&path, json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "value": {"displayName": "Jane D.", "name.familyName": "Dough"}}
        ]))
        .await;
        assert_eq!(u["active"], false, "a JSON boolean comes back");
        assert_eq!(
            u["name"],
            json!({"givenName": "Jane", "familyName": "Dough"})
        );
        let m = member(&t, &id).await.unwrap();
        assert_eq!(
            (m["active"].as_bool(), m["name"].as_str()),
            (Some(false), Some("Jane D."))
        );
        let u = idp
            .patch(
                &path,
                json!([{"op": "Replace", "value": {"active": "True"}}]),
            )
            .await;
        assert_eq!(u["active"], true);

        // A value-filtered path changes the work email, which is the login email.
        idp.patch(&path, json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane.doe@acme.example"}
    ]))
    .await;
        assert_eq!(
            member(&t, &id).await.unwrap()["email"],
            "jane.doe@acme.example"
        );

        // The roles attribute sets the enterprise role.
        idp.patch(
            &path,
            json!([{"op": "Add", "path": "roles", "value": [{"value": "admin"}]}]),
        )
        .await;
        assert_eq!(member(&t, &id).await.unwrap()["role"], "admin");
        let changed = t.audit("action=member.role_changed").await;
        assert_eq!(changed[0]["actor_type"], "scim_token");
        // Without roles the role stays: an identity provider that does not manage roles never
        // demotes anyone; a non-admin value does.
        idp.patch(&path, json!([{"op": "Remove", "path": "roles"}]))
            .await;
        assert_eq!(member(&t, &id).await.unwrap()["role"], "admin");
        idp.patch(
            &path,
            json!([{"op": "replace", "path": "roles", "value": [{"value": "user"}]}]),
        )
        .await;
        assert_eq!(member(&t, &id).await.unwrap()["role"], "user");
        // A role changed in the product since is what the next PATCH starts from: an
        // unrelated change does not write the identity provider's last role back.
        let promoted = t
            .patch(
                &t.org(&format!("/members/{id}")),
                &t.owner_token,
                &json!({"role": "admin"}),
            )
            .await;
        assert!(promoted.status().is_success(), "{}", promoted.status());
        let shown = idp
            .expect(reqwest::Method::GET, &path, None, StatusCode::OK)
            .await;
        assert_eq!(shown["roles"], json!([{"value": "admin"}]));
        let u = idp
            .patch(
                &path,
                json!([{"op": "replace", "path": "title", "value": "Lead"}]),
            )
            .await;
        assert_eq!(
            (&u["title"], &u["roles"]),
            (&json!("Lead"), &json!([{"value": "admin"}]))
        );
        assert_eq!(member(&t, &id).await.unwrap()["role"], "admin");

        // Errors carry their scimType.
        let e = idp
        .expect(reqwest::Method::PATCH, &path,
            Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "Jump", "path": "active"}]})),
            StatusCode::BAD_REQUEST)
        .await;
        assert_eq!(e["scimType"], "invalidSyntax");
        let e = idp
            .expect(
                reqwest::Method::GET,
                "/Users?filter=userName%20eq",
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e["scimType"], "invalidFilter");
        let e = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&json!({"schemas": [USER], "active": true})),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e["scimType"], "invalidValue");

        // Filters beyond equality, and paging.
        for (filter, n) in [
            ("userName sw \"jd\"", 1),
            ("emails.value co \"doe@acme\"", 1),
            ("displayName pr and active eq true", 2),
            ("userName eq \"nobody\" or externalId eq \"00u-jdoe\"", 1),
            ("not (userName eq \"jdoe\")", 1),
        ] {
            let q = format!("/Users?filter={}", urlencode(filter));
            assert_eq!(idp.get(&q).await["totalResults"], n, "{filter}");
        }
        let page = idp.get("/Users?startIndex=2&count=1").await;
        assert_eq!(
            (
                page["startIndex"].as_u64(),
                page["itemsPerPage"].as_u64(),
                page["totalResults"].as_u64()
            ),
            (Some(2), Some(1), Some(2))
        );
        let counted = idp.get("/Users?count=0").await;
        assert_eq!(
            (
                counted["totalResults"].as_u64(),
                counted["Resources"].clone()
            ),
            (Some(2), json!([]))
        );
    }
);

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn team_members(t: &TestApp, team: &str) -> Vec<String> {
    let page = json_of(
        t.get(&t.org(&format!("/teams/{team}/members")), &t.owner_token)
            .await,
    )
    .await;
    assert!(page["next_cursor"].is_null(), "one page: {page}");
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

both_backends!(
    groups_are_teams_and_membership_is_pushed_by_patch,
    |b| async move {
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let mut ids = Vec::new();
        for who in ["ann", "bob"] {
            let u = idp
            .expect(reqwest::Method::POST, "/Users",
                Some(&json!({"schemas": [USER], "userName": who, "emails": [{"value": format!("{who}@acme.example"), "primary": true}]})),
                StatusCode::CREATED)
            .await;
            ids.push(u["id"].as_str().unwrap().to_owned());
        }
        let (ann, bob) = (ids[0].clone(), ids[1].clone());
        let g = idp
        .expect(reqwest::Method::POST, "/Groups",
            Some(&json!({"schemas": [GROUP], "displayName": "Design", "externalId": "grp-1", "members": [{"value": ann}]})),
            StatusCode::CREATED)
        .await;
        let team = g["id"].as_str().unwrap().to_owned();
        assert!(team.starts_with("team_"));
        assert_eq!(team_members(&t, &team).await, vec![ann.clone()]);
        let teams = json_of(t.get(&t.org("/teams"), &t.owner_token).await).await;
        assert!(
            teams["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "Design")
        );

        let path = format!("/Groups/{team}");
        idp.patch(
            &path,
            json!([{"op": "Add", "path": "members", "value": [{"value": bob}]}]),
        )
        .await;
        let mut both = vec![ann.clone(), bob.clone()];
        both.sort();
        assert_eq!(team_members(&t, &team).await, both);
        idp.patch(
            &path,
            json!([{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}]),
        )
        .await;
        assert_eq!(team_members(&t, &team).await, vec![bob.clone()]);
        // Entra removes with a value list.
        idp.patch(
            &path,
            json!([{"op": "Remove", "path": "members", "value": [{"value": bob}]}]),
        )
        .await;
        assert!(team_members(&t, &team).await.is_empty());
        // Someone who is not a member of the organization changes nothing, and is not an error.
        idp.patch(&path, json!([{"op": "add", "path": "members", "value": [{"value": "usr_00000000000000000000000000000000"}]}])).await;
        assert!(team_members(&t, &team).await.is_empty());
        // A member taken off the team in the product stays off through a later PATCH that
        // does not name them.
        idp.patch(
            &path,
            json!([{"op": "add", "path": "members", "value": [{"value": ann}]}]),
        )
        .await;
        assert_eq!(team_members(&t, &team).await, vec![ann.clone()]);
        let off = t
            .delete(
                &t.org(&format!("/teams/{team}/members/{ann}")),
                &t.owner_token,
            )
            .await;
        assert!(off.status().is_success(), "{}", off.status());
        idp.patch(
            &path,
            json!([{"op": "replace", "path": "externalId", "value": "grp-1"}]),
        )
        .await;
        assert!(team_members(&t, &team).await.is_empty());
        // The identity provider then removes her too (Okta's way): nothing to remove, no error.
        idp.patch(
            &path,
            json!([{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}]),
        )
        .await;
        assert!(team_members(&t, &team).await.is_empty());
        // The entry naming no member is kept, and can be removed although the team has no
        // members to render.
        idp.patch(
            &path,
            json!([{"op": "remove", "path": "members[value eq \"usr_00000000000000000000000000000000\"]"}]),
        )
        .await;

        let renamed = idp
            .patch(
                &path,
                json!([{"op": "replace", "path": "displayName", "value": "Brand"}]),
            )
            .await;
        assert_eq!(
            (
                renamed["displayName"].as_str(),
                renamed["externalId"].as_str()
            ),
            (Some("Brand"), Some("grp-1"))
        );
        let found = idp
            .get("/Groups?filter=displayName%20eq%20%22brand%22")
            .await;
        assert_eq!(found["totalResults"], 1);
        let updates = t.audit("action=team.updated").await;
        assert!(
            updates.iter().all(|e| e["actor_type"] == "scim_token"),
            "the group's updates are the token's: {updates:?}"
        );
        // The Owner taking Ann off the team is a member's removal from it, by a person.
        let taken_off = t.audit("action=team.member_removed").await;
        assert_eq!(taken_off.len(), 1, "{taken_off:?}");
        assert_eq!(taken_off[0]["actor_type"], "user");
        // An archived team's group takes nobody new: a 409 that is no `uniqueness` (nothing is
        // taken; an identity provider must not read it as "already exists").
        let team_url = t.org(&format!("/teams/{team}"));
        let shelved = t
            .patch(&team_url, &t.owner_token, &json!({"archived": true}))
            .await;
        assert_eq!(shelved.status(), StatusCode::OK);
        let refused = idp
            .expect(
                reqwest::Method::PATCH,
                &path,
                Some(&json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": ann}]}]})),
                StatusCode::CONFLICT,
            )
            .await;
        assert!(refused["scimType"].is_null(), "{refused}");
        assert!(
            refused["detail"].as_str().unwrap().contains("archived"),
            "{refused}"
        );
        assert!(team_members(&t, &team).await.is_empty());
        let restored = t
            .patch(&team_url, &t.owner_token, &json!({"archived": false}))
            .await;
        assert_eq!(restored.status(), StatusCode::OK);

        idp.expect(reqwest::Method::DELETE, &path, None, StatusCode::NO_CONTENT)
            .await;
        idp.expect(reqwest::Method::GET, &path, None, StatusCode::NOT_FOUND)
            .await;
        // The default team is never deleted.
        let default = idp
            .get("/Groups?filter=displayName%20eq%20%22Default%22")
            .await;
        let default_id = default["Resources"][0]["id"].as_str().unwrap().to_owned();
        idp.expect(
            reqwest::Method::DELETE,
            &format!("/Groups/{default_id}"),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
);

both_backends!(
    the_owner_is_protected_and_tokens_are_scoped,
    |b| async move {
        let t = spawn_app_with(
            b,
            Options {
                trust_loopback_proxy: true,
                demo: true,
                ..Options::default()
            },
        )
        .await;
        let idp = Idp::connect(&t).await;
        let owner = t.member_id(OWNER_EMAIL).await;
        let path = format!("/Users/{owner}");

        // Never deactivated, deleted or demoted through SCIM.
        let e = idp
        .expect(reqwest::Method::PATCH, &path,
            Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]})),
            StatusCode::BAD_REQUEST)
        .await;
        assert_eq!(e["scimType"], "mutability");
        let e = idp
            .expect(reqwest::Method::DELETE, &path, None, StatusCode::FORBIDDEN)
            .await;
        assert!(e.get("scimType").is_none(), "a 403 has no scimType: {e}");
        idp.patch(
            &path,
            json!([{"op": "replace", "path": "roles", "value": [{"value": "user"}]}]),
        )
        .await;
        assert_eq!(member(&t, &owner).await.unwrap()["role"], "owner");
        // Nor is the Owner's sign-in theirs to change: whoever holds a token would take the
        // account over. An address that has an account is refused alike (not as taken), so
        // that a token cannot find out which addresses have accounts.
        for op in [
            json!({"op": "replace", "path": "password", "value": "an entirely new passphrase 9"}),
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "taken@over.example"}),
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "mike@example.com"}),
        ] {
            let e = idp
                .expect(
                    reqwest::Method::PATCH,
                    &path,
                    Some(&json!({"schemas": [PATCH_OP], "Operations": [op]})),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            assert_eq!(e["scimType"], "mutability");
        }
        t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        // A member this organization alone holds gets the password the identity provider sets,
        // and the sessions the old one opened end.
        let lisa_id = t.member_id("lisa@example.com").await;
        let old_session = t.login("lisa@example.com", DEMO_PASSWORD).await;
        idp.patch(
            &format!("/Users/{lisa_id}"),
            json!([{"op": "replace", "path": "password", "value": "the identity provider's passphrase 7"}]),
        )
        .await;
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &old_session).await.status(),
            StatusCode::UNAUTHORIZED
        );
        t.login("lisa@example.com", "the identity provider's passphrase 7")
            .await;
        // One who also belongs to another organization keeps their own sign-in.
        let (_, globex_owner) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        crate::team_management::invited(&t, &globex_owner, "user").await;
        let token = crate::team_management::outbox_token(&t, &globex_owner).await;
        let globex_session = t.login(&globex_owner, OWNER_PASSWORD).await;
        let accepted = t
            .client
            .post(t.url("/api/v1/invitations/accept"))
            .bearer_auth(&globex_session)
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert!(accepted.status().is_success(), "{}", accepted.status());
        let globex_id = t.member_id(&globex_owner).await;
        let e = idp
            .expect(reqwest::Method::PATCH, &format!("/Users/{globex_id}"),
                Some(&json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": "password", "value": "an entirely new passphrase 9"}]})),
                StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(e["scimType"], "mutability");
        t.login(&globex_owner, OWNER_PASSWORD).await;
        // Nor does this organization's identity provider rename them everywhere.
        let kept = idp
            .expect(
                reqwest::Method::PATCH,
                &format!("/Users/{globex_id}"),
                Some(&json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": "displayName", "value": "Renamed By Acme"}]})),
                StatusCode::OK,
            )
            .await;
        // (The organization's own record keeps what its identity provider sent.)
        assert_eq!(kept["displayName"], "Renamed By Acme");
        let me = json_of(t.get(&t.url("/api/v1/me"), &globex_session).await).await;
        assert!(
            me["user"]["name"].is_string() && me["user"]["name"] != "Renamed By Acme",
            "{me}"
        );

        // Tokens: a wrong one, one used on another organization, a revoked one.
        let wrong = idp
            .client
            .get(format!("{}/Users", idp.base))
            .bearer_auth("axs_nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(wrong.headers().contains_key("www-authenticate"));
        let (other, _) = crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        let cross = idp
            .client
            .get(t.url(&format!("/scim/v2/{other}/Users")))
            .bearer_auth(&idp.token)
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), StatusCode::UNAUTHORIZED);

        // Only the Owner and Admins, in a session, on the Enterprise plan, manage tokens.
        let lisa = t
            .login("lisa@example.com", "the identity provider's passphrase 7")
            .await;
        assert_eq!(
            t.post(&t.org("/scim-tokens"), &lisa, &json!({"name": "x"}))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        let (pro, pro_owner) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        let pro_owner = t.login(&pro_owner, OWNER_PASSWORD).await;
        let p = problem(
            t.post(
                &t.url(&format!("/api/v1/orgs/{pro}/scim-tokens")),
                &pro_owner,
                &json!({"name": "x"}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "plan_lacks_feature");
        let listed = json_of(t.get(&t.org("/scim-tokens"), &t.owner_token).await).await;
        assert_eq!(listed[0]["id"], idp.token_id.as_str());
        assert!(listed[0]["last_used_at"].is_string());
        assert_eq!(listed[0].get("secret"), None);

        // The IP allowlist applies to SCIM too.
        let res = t
            .client
            .patch(t.org("/security"))
            .bearer_auth(&t.owner_token)
            .header("x-forwarded-for", "10.1.2.3")
            .json(&json!({"ip_allowlist": ["10.0.0.0/8"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let blocked = idp.send(reqwest::Method::GET, "/Users", None).await;
        assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
        let inside = idp
            .client
            .get(format!("{}/Users", idp.base))
            .bearer_auth(&idp.token)
            .header("x-forwarded-for", "10.9.9.9")
            .send()
            .await
            .unwrap();
        assert_eq!(inside.status(), StatusCode::OK);

        // Revoked: the token stops working at once.
        let res = t
            .client
            .delete(t.org(&format!("/scim-tokens/{}", idp.token_id)))
            .bearer_auth(&t.owner_token)
            .header("x-forwarded-for", "10.1.2.3")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let revoked = idp
            .client
            .get(format!("{}/Users", idp.base))
            .bearer_auth(&idp.token)
            .header("x-forwarded-for", "10.9.9.9")
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
        let res = t
            .client
            .patch(t.org("/security"))
            .bearer_auth(&t.owner_token)
            .header("x-forwarded-for", "10.1.2.3")
            .json(&json!({"ip_allowlist": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let events: Vec<String> = t
            .audit("action=scim.")
            .await
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["scim.token_revoked", "scim.token_created"]);

        // Refusals are audited like the API's, in the token's name (this token's creator is the
        // Owner, so removing the Owner is removing itself), deactivating the Owner and changing
        // a sign-in that is not the organization's included; a token that authenticates no one
        // has no actor to record.
        let denied = t.audit("action=access.denied&limit=50").await;
        let refusals: Vec<(&str, &str, &str)> = denied
            .iter()
            .filter(|r| r["target_id"].as_str().unwrap().contains("/scim/v2/"))
            .map(|r| {
                (
                    r["target_id"].as_str().unwrap(),
                    r["reason"].as_str().unwrap(),
                    r["actor_id"].as_str().unwrap(),
                )
            })
            .collect();
        let token = idp.token_id.as_str();
        assert_eq!(
            refusals,
            [
                ("GET /scim/v2/{org_id}/Users", "ip_not_allowed", token),
                // A shared account's sign-in, then the Owner's password and email (twice).
                (
                    "PATCH /scim/v2/{org_id}/Users/{id}",
                    "credentials_not_owned",
                    token
                ),
                (
                    "PATCH /scim/v2/{org_id}/Users/{id}",
                    "credentials_not_owned",
                    token
                ),
                (
                    "PATCH /scim/v2/{org_id}/Users/{id}",
                    "credentials_not_owned",
                    token
                ),
                (
                    "PATCH /scim/v2/{org_id}/Users/{id}",
                    "credentials_not_owned",
                    token
                ),
                ("DELETE /scim/v2/{org_id}/Users/{id}", "remove_self", token),
                (
                    "PATCH /scim/v2/{org_id}/Users/{id}",
                    "owner_protected",
                    token
                ),
            ],
            "{denied:?}"
        );
    }
);

both_backends!(
    a_look_up_by_user_name_finds_hand_added_members_by_email_and_no_one_elsewhere,
    |b| async move {
        let t = spawn_app(b).await;
        let idp = Idp::connect(&t).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let look_up = |name: &str| {
            format!(
                "/Users?filter={}",
                urlencode(&format!("userName eq \"{name}\""))
            )
        };
        // A member added by hand has no record: their userName is their email, in any case.
        let found = idp.get(&look_up("LISA@example.com")).await;
        assert_eq!(found["totalResults"], 1, "{found}");
        assert_eq!(found["Resources"][0]["id"], lisa_id.as_str());
        assert_eq!(found["Resources"][0]["userName"], "lisa@example.com");
        let searched = idp
            .expect(
                reqwest::Method::POST,
                "/Users/.search",
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "userName eq \"lisa@example.com\"",
                })),
                StatusCode::OK,
            )
            .await;
        assert_eq!(searched["totalResults"], 1, "{searched}");
        // The rest of the filter still applies to what the look-up finds.
        let both = format!(
            "/Users?filter={}",
            urlencode("userName eq \"lisa@example.com\" and active eq false")
        );
        assert_eq!(idp.get(&both).await["totalResults"], 0);
        // Their email is taken as a userName.
        let dup = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("Lisa@Example.com", "someone@acme.example")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(dup["scimType"], "uniqueness");
        // Once the identity provider names her, she is found by that name only.
        idp.patch(
            &format!("/Users/{lisa_id}"),
            json!([{"op": "replace", "path": "userName", "value": "lisa.s"}]),
        )
        .await;
        assert_eq!(
            idp.get(&look_up("lisa@example.com")).await["totalResults"],
            0
        );
        let renamed = idp.get(&look_up("LISA.S")).await;
        assert_eq!(renamed["Resources"][0]["id"], lisa_id.as_str(), "{renamed}");
        // Her email is free as a userName now; a member of another organization is never found.
        let (_, elsewhere) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        assert_eq!(idp.get(&look_up(&elsewhere)).await["totalResults"], 0);
        assert_eq!(
            idp.get(&look_up("nobody@acme.example")).await["totalResults"],
            0
        );
        let taken = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("lisa@example.com", "lisa.new@acme.example")),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(taken["userName"], "lisa@example.com");
    }
);

both_backends!(
    a_sign_in_waiting_for_its_second_factor_ends_with_deactivation,
    |b| async move {
        // Jane signs in with her password and is deactivated before she enters her code: the
        // code no longer opens a session.
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let jane = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc("jane@acme.example", "jane@acme.example")),
                StatusCode::CREATED,
            )
            .await;
        let id = jane["id"].as_str().unwrap();
        let session = t
            .login("jane@acme.example", "correct horse battery staple 42")
            .await;
        let (uri, _) = enrol_totp(&t, &session, "correct horse battery staple 42").await;
        t.clock.advance(chrono::Duration::seconds(30)); // past the code used to enrol
        let res = t
            .login_response("jane@acme.example", "correct horse battery staple 42")
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let challenge = json_of(res).await["challenge"].clone();
        idp.patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
        // No text for a sign-in that can no longer be completed.
        let res = t
            .client
            .post(t.url("/api/v1/auth/login/sms"))
            .json(&json!({ "challenge": challenge }))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN, "member_deactivated").await;
        let code = pyotp_code(&uri, t.clock.now().timestamp());
        let res = t
            .client
            .post(t.url("/api/v1/auth/login/verify"))
            .json(&json!({ "challenge": challenge, "code": code }))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN, "member_deactivated").await;
        let refused = t.audit("action=auth.login_failed").await;
        assert_eq!(refused[0]["reason"], "deactivated", "{refused:?}");
        assert_eq!(refused[0]["actor_id"], id);
        // Reactivated, she signs in again from the start: that challenge is spent.
        idp.patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": true}]),
        )
        .await;
        let res = t
            .client
            .post(t.url("/api/v1/auth/login/verify"))
            .json(&json!({ "challenge": challenge, "code": code }))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
);

both_backends!(
    a_malformed_query_is_refused_before_anything_is_written,
    |b| async move {
        // A creation whose query string cannot be read is refused before the member is made
        // (it was made, then answered 400, and the provider's retry met a 409); an attribute
        // name that is not ASCII is an answer, not a dropped connection.
        let t = spawn_app_with(b, Options::default()).await;
        let idp = Idp::connect(&t).await;
        let doc = user_doc("quinn@acme.example", "quinn@acme.example");
        let res = idp
            .client
            .post(format!("{}/Users?filter=(", idp.base))
            .bearer_auth(&idp.token)
            .header("content-type", "application/scim+json")
            .body(doc.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(
            member_where(&t, "email", "quinn@acme.example")
                .await
                .is_none()
        );
        let made = idp
            .expect(
                reqwest::Method::POST,
                "/Users",
                Some(&doc),
                StatusCode::CREATED,
            )
            .await;
        let id = made["id"].as_str().unwrap();
        for query in ["attributes=a%C3%A9%C3%A9", "filter=a%C3%A9%C3%A9%20pr"] {
            let path = if query.starts_with("filter") {
                format!("/Users?{query}")
            } else {
                format!("/Users/{id}?{query}")
            };
            let res = idp.send(reqwest::Method::GET, &path, None).await;
            assert!(
                res.status().is_success() || res.status().is_client_error(),
                "{path}: {}",
                res.status()
            );
        }
    }
);

both_backends!(
    members_the_identity_provider_creates_alert_the_owner_as_seats_fill,
    |b| async move {
        // SCIM creations fill seats as invitations do, so they send the member alerts too (they
        // sent none: only the hourly repair pass told the Owner).
        let t = spawn_app_with(b, Options::default()).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let members = json_of(t.get(&t.org("/members"), &t.owner_token).await).await;
        let start = members["items"].as_array().unwrap().len();
        let max = start as u64 + 4;
        let overrides =
            billing_limits::LimitOverrides([(billing_limits::Limit::Members, Some(max))].into());
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
            .await
            .unwrap();
        let idp = Idp::connect(&t).await;
        let alerts = || async {
            let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["kind"] == "usage_alert" && m["to"] == OWNER_EMAIL)
                .map(|m| m["subject"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let mut seen = Vec::new();
        for n in 1..=4u64 {
            let name = format!("provisioned{n}@acme.example");
            idp.expect(
                reqwest::Method::POST,
                "/Users",
                Some(&user_doc(&name, &name)),
                StatusCode::CREATED,
            )
            .await;
            let used = start as u64 + n;
            let got = alerts().await;
            // 80 % and 100 % of the limit, each once, as the seats reach it.
            let due = [80, 100].iter().filter(|&&p| used * 100 >= p * max).count();
            assert_eq!(got.len(), due, "{used} of {max}: {got:?}");
            seen = got;
        }
        seen.sort_unstable();
        assert!(seen[0].ends_with("100 % of your members used"), "{seen:?}");
        assert!(seen[1].ends_with("80 % of your members used"), "{seen:?}");
        assert_eq!(t.audit("action=usage.alert_sent").await.len(), 2);
    }
);

both_backends!(
    a_replace_without_an_address_keeps_the_members_address,
    |b| async move {
        let t = spawn_app(b).await;
        let idp = Idp::connect(&t).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        // The identity provider knows her by an employee number and sends no email: her
        // sign-in address stays (not a placeholder that would lock her out).
        let doc = json!({"schemas": [USER], "userName": "E1234", "displayName": "Lisa Chen"});
        let res = idp
            .expect(
                reqwest::Method::PUT,
                &format!("/Users/{lisa_id}"),
                Some(&doc),
                StatusCode::OK,
            )
            .await;
        assert_eq!(res["userName"], "E1234", "{res}");
        assert_eq!(
            member(&t, &lisa_id).await.unwrap()["email"],
            "lisa@example.com"
        );
        t.login("lisa@example.com", DEMO_PASSWORD).await;
    }
);

both_backends!(
    a_change_made_in_the_product_moves_the_users_etag,
    |b| async move {
        let t = spawn_app(b).await;
        let idp = Idp::connect(&t).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let path = format!("/Users/{lisa_id}");
        let read = idp.get(&path).await;
        let before = read["meta"]["version"].as_str().unwrap().to_owned();
        assert_eq!(idp.get(&path).await["meta"]["version"], before.as_str());
        // The Owner makes her an Admin in the product; the identity provider's copy is stale.
        let res = t
            .patch(
                &t.org(&format!("/members/{lisa_id}")),
                &t.owner_token,
                &json!({ "role": "admin" }),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        let now = idp.get(&path).await;
        let after = now["meta"]["version"].as_str().unwrap().to_owned();
        assert_ne!(after, before);
        let put = |tag: String| {
            let (idp, path) = (&idp, &path);
            async move {
                idp.client
                    .put(format!("{}{path}", idp.base))
                    .bearer_auth(&idp.token)
                    .header("if-match", tag)
                    .json(&json!({"schemas": [USER], "userName": "lisa@example.com",
                                  "emails": [{"value": "lisa@example.com", "primary": true}],
                                  "roles": [{"value": "user"}]}))
                    .send()
                    .await
                    .unwrap()
            }
        };
        // A write made against the resource as it was is refused, and demotes nobody.
        let stale = put(before).await;
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(member(&t, &lisa_id).await.unwrap()["role"], "admin");
        // Against the resource as it is, it applies.
        let fresh = put(after).await;
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(member(&t, &lisa_id).await.unwrap()["role"], "user");
    }
);
