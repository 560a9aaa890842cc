//! How the broker authenticates to Vault: a static token, an AppRole login
//! (`auth/<mount>/login` with `role_id` + `secret_id`), or an AWS IAM login
//! (`auth/<mount>/login` with a SigV4-signed `sts:GetCallerIdentity` request that Vault replays
//! to STS). [`VaultAuth`] only says *how*; the token's lifecycle (lazy login, renew-self,
//! re-login on 403) lives in [`super::client::VaultClient`].
//!
//! Nothing here logs or formats a secret: `Debug` redacts, and login errors are built by the
//! client with the secrets scrubbed.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::domain::error::BinderError;

/// Default mount path of the AppRole auth method.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// Default mount path of the AWS auth method.
pub const DEFAULT_AWS_MOUNT: &str = "aws";

/// How the broker gets its Vault token.
pub enum VaultAuth {
    /// A token given by the operator (`VAULT_TOKEN`). Renewed with `renew-self` when it is
    /// renewable and has a TTL; it cannot be re-obtained.
    Token(SecretString),
    /// AppRole: `POST auth/<mount>/login {"role_id", "secret_id"}`.
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: SecretString,
    },
    /// AWS IAM: `POST auth/<mount>/login` with a signed `sts:GetCallerIdentity` request.
    #[cfg(feature = "aws")]
    AwsIam(aws_iam::AwsIam),
}

impl From<SecretString> for VaultAuth {
    fn from(token: SecretString) -> Self {
        Self::Token(token)
    }
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::AppRole { mount, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", &"<redacted>")
                .field("secret_id", &"<redacted>")
                .finish(),
            #[cfg(feature = "aws")]
            Self::AwsIam(iam) => iam.fmt(f),
        }
    }
}

/// A login request: the path under `/v1/` and its JSON body (holds secrets: never log it).
pub struct LoginRequest {
    pub path: String,
    pub body: Value,
}

impl VaultAuth {
    /// AppRole with the default mount.
    pub fn approle(role_id: SecretString, secret_id: SecretString) -> Self {
        Self::AppRole {
            mount: DEFAULT_APPROLE_MOUNT.into(),
            role_id,
            secret_id,
        }
    }

    /// The method's name, for logs and errors: `token`, `approle` or `aws`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "approle",
            #[cfg(feature = "aws")]
            Self::AwsIam(_) => "aws",
        }
    }

    /// Whether a new token can be obtained (by logging in again).
    pub fn can_login(&self) -> bool {
        !matches!(self, Self::Token(_))
    }

    /// Checks what can be checked without a request (mount paths, role names).
    pub fn validate(&self) -> Result<(), BinderError> {
        match self {
            Self::Token(t) => {
                if t.expose_secret().trim().is_empty() {
                    return Err(BinderError::Config("VAULT_TOKEN is empty".into()));
                }
                if reqwest::header::HeaderValue::from_str(t.expose_secret()).is_err() {
                    return Err(BinderError::Config(
                        "VAULT_TOKEN has invalid characters".into(),
                    ));
                }
            }
            Self::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                check_auth_mount(mount)?;
                if role_id.expose_secret().trim().is_empty()
                    || secret_id.expose_secret().trim().is_empty()
                {
                    return Err(BinderError::Config(
                        "VAULT_ROLE_ID and VAULT_SECRET_ID must not be empty".into(),
                    ));
                }
            }
            #[cfg(feature = "aws")]
            Self::AwsIam(iam) => iam.validate()?,
        }
        Ok(())
    }

    /// The login request, or `None` for a static token. The IAM login reads the AWS
    /// credentials (the environment's, unless others were given) and signs with them.
    pub async fn login_request(&self) -> Result<Option<LoginRequest>, BinderError> {
        match self {
            Self::Token(_) => Ok(None),
            Self::AppRole {
                mount,
                role_id,
                secret_id,
            } => Ok(Some(LoginRequest {
                path: format!("auth/{mount}/login"),
                body: json!({
                    "role_id": role_id.expose_secret(),
                    "secret_id": secret_id.expose_secret(),
                }),
            })),
            #[cfg(feature = "aws")]
            Self::AwsIam(iam) => iam.login_request().await.map(Some),
        }
    }

    /// Strings that must never appear in an error text (login answers are scrubbed of them).
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Token(t) => vec![t.expose_secret()],
            Self::AppRole {
                role_id, secret_id, ..
            } => vec![role_id.expose_secret(), secret_id.expose_secret()],
            #[cfg(feature = "aws")]
            Self::AwsIam(_) => Vec::new(),
        }
    }
}

/// An auth mount path: `a-z0-9_-` segments separated by `/`.
fn check_auth_mount(mount: &str) -> Result<(), BinderError> {
    let ok = !mount.is_empty()
        && mount.len() <= 128
        && mount.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && seg != "."
                && seg != ".."
        });
    if ok {
        Ok(())
    } else {
        Err(BinderError::Config(format!(
            "the Vault auth mount {mount:?} is not a mount path like `approle` or `aws`"
        )))
    }
}

#[cfg(feature = "aws")]
pub mod aws_iam {
    //! The AWS IAM login: a SigV4-signed `sts:GetCallerIdentity` POST that Vault replays to
    //! STS (DESIGN.md; `reference/vault-openbao.md` §10). Signed with `aws-sigv4`, the
    //! signer the AWS SDK already uses, with credentials from the environment
    //! (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, as Lambda sets them),
    //! or a provider given with [`AwsIam::with_credentials`]. Not the SDK's default chain: it
    //! would link the STS and SSO clients into every Lambda binary (BENCHMARKS.md).

    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::{Value, json};
    use tokio::sync::OnceCell;

    use super::{LoginRequest, check_auth_mount};
    use crate::domain::error::BinderError;

    /// The signed request's body (form-encoded, as the AWS CLI and Vault's own client send).
    pub const STS_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
    /// Its content type.
    pub const STS_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
    /// The header that binds a login to one Vault (`iam_server_id_header_value`).
    pub const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

    /// Settings of the AWS IAM login.
    pub struct AwsIam {
        /// Auth mount path (default `aws`).
        pub mount: String,
        /// The Vault role (`VAULT_AWS_ROLE`).
        pub role: String,
        /// Value of `X-Vault-AWS-IAM-Server-ID`, when the mount requires one.
        pub server_id: Option<String>,
        /// STS region: `None` signs for the global endpoint `sts.amazonaws.com` (region
        /// `us-east-1`, Vault's default); `Some(r)` for `sts.<r>.amazonaws.com`, which must be
        /// the mount's `sts_endpoint`/`sts_region`.
        pub sts_region: Option<String>,
        credentials: OnceCell<SharedCredentialsProvider>,
    }

    impl std::fmt::Debug for AwsIam {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AwsIam")
                .field("mount", &self.mount)
                .field("role", &self.role)
                .field("server_id", &self.server_id)
                .field("sts_region", &self.sts_region)
                .finish_non_exhaustive()
        }
    }

    impl AwsIam {
        /// IAM login with the credentials of the environment variables (read at each login).
        pub fn new(role: impl Into<String>) -> Self {
            Self {
                mount: super::DEFAULT_AWS_MOUNT.into(),
                role: role.into(),
                server_id: None,
                sts_region: None,
                credentials: OnceCell::new(),
            }
        }

        /// Uses these credentials instead of the default chain (tests, embedding).
        pub fn with_credentials(self, provider: impl ProvideCredentials + 'static) -> Self {
            Self {
                credentials: OnceCell::new_with(Some(SharedCredentialsProvider::new(provider))),
                ..self
            }
        }

        pub(super) fn validate(&self) -> Result<(), BinderError> {
            check_auth_mount(&self.mount)?;
            if self.role.trim().is_empty() {
                return Err(BinderError::Config("VAULT_AWS_ROLE is empty".into()));
            }
            if let Some(region) = &self.sts_region {
                StsEndpoint::regional(region)?;
            }
            if self
                .server_id
                .as_deref()
                .is_some_and(|id| reqwest::header::HeaderValue::from_str(id).is_err())
            {
                return Err(BinderError::Config(
                    "the X-Vault-AWS-IAM-Server-ID value has invalid characters".into(),
                ));
            }
            Ok(())
        }

        pub(super) async fn login_request(&self) -> Result<LoginRequest, BinderError> {
            let provider = self
                .credentials
                .get_or_init(|| async {
                    SharedCredentialsProvider::new(
                        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                    )
                })
                .await;
            let credentials = provider.provide_credentials().await.map_err(|e| {
                BinderError::Unavailable(format!(
                    "no AWS credentials for the Vault IAM login: {}",
                    aws_credential_types::provider::error::CredentialsError::to_string(&e)
                ))
            })?;
            let endpoint = match &self.sts_region {
                Some(r) => StsEndpoint::regional(r)?,
                None => StsEndpoint::global(),
            };
            let body = login_body(
                &self.role,
                &credentials,
                &endpoint,
                self.server_id.as_deref(),
                SystemTime::now(),
            )?;
            Ok(LoginRequest {
                path: format!("auth/{}/login", self.mount),
                body,
            })
        }
    }

    /// Where the signed request goes and the region it is signed for.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StsEndpoint {
        pub url: String,
        pub host: String,
        pub region: String,
    }

    impl StsEndpoint {
        /// `https://sts.amazonaws.com/`, signed for `us-east-1` (Vault's default).
        pub fn global() -> Self {
            Self {
                url: "https://sts.amazonaws.com/".into(),
                host: "sts.amazonaws.com".into(),
                region: "us-east-1".into(),
            }
        }

        /// `https://sts.<region>.amazonaws.com/`, signed for `region`.
        pub fn regional(region: &str) -> Result<Self, BinderError> {
            let ok = !region.is_empty()
                && region.len() <= 32
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(BinderError::Config(format!(
                    "{region:?} is not an AWS region like eu-west-1"
                )));
            }
            Ok(Self {
                url: format!("https://sts.{region}.amazonaws.com/"),
                host: format!("sts.{region}.amazonaws.com"),
                region: region.into(),
            })
        }
    }

    /// The body of `POST auth/<mount>/login`: the signed `sts:GetCallerIdentity` request,
    /// base64-encoded as Vault wants it. Headers are a JSON map `name → [value]` (as Vault's
    /// CLI and hvac send them), keys sorted.
    pub fn login_body(
        role: &str,
        credentials: &Credentials,
        endpoint: &StsEndpoint,
        server_id: Option<&str>,
        time: SystemTime,
    ) -> Result<Value, BinderError> {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", STS_CONTENT_TYPE),
            ("Host", endpoint.host.as_str()),
        ];
        if let Some(id) = server_id {
            headers.push((SERVER_ID_HEADER, id));
        }
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&endpoint.region)
            .name("sts")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| BinderError::Config("cannot set up the SigV4 signer".into()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            endpoint.url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(STS_BODY.as_bytes()),
        )
        .map_err(|_| BinderError::Config("the STS request cannot be signed".into()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|_| BinderError::Config("signing the STS request failed".into()))?
            .into_parts();
        // A BTreeMap: sorted keys whatever serde_json's map type is.
        let mut map: BTreeMap<String, [&str; 1]> = BTreeMap::new();
        for (name, value) in headers {
            map.insert(name.to_owned(), [value]);
        }
        for (name, value) in instructions.headers() {
            map.insert(canonical_name(name), [value]);
        }
        let headers_json = serde_json::to_string(&map)
            .map_err(|_| BinderError::Config("cannot encode the STS headers".into()))?;
        Ok(json!({
            "role": role,
            "iam_http_request_method": "POST",
            "iam_request_url": B64.encode(endpoint.url.as_bytes()),
            "iam_request_body": B64.encode(STS_BODY.as_bytes()),
            "iam_request_headers": B64.encode(headers_json.as_bytes()),
        }))
    }

    /// `x-amz-date` → `X-Amz-Date` (the signer emits lower case; Go canonicalises anyway).
    fn canonical_name(name: &str) -> String {
        name.split('-')
            .map(|part| {
                let mut c = part.chars();
                match c.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-")
    }

    #[cfg(test)]
    mod tests {
        //! Known-good vectors from botocore's `SigV4Auth` (the signer of the AWS CLI and of
        //! hvac's `iam_login`), produced by `tests/vectors/vault_iam_login.py` (botocore
        //! 1.44.8, in a throwaway venv) with the same fixed credentials, clock and hosts. There
        //! is no live IAM test: OpenBao has no `aws` auth method and no STS is reachable here.

        use std::time::{Duration, UNIX_EPOCH};

        use super::*;

        const ACCESS_KEY: &str = "AKIDEXAMPLE";
        const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";
        /// 2015-08-30T12:36:00Z.
        const NOW_SECS: u64 = 1_440_938_160;

        const BODY_B64: &str = "QWN0aW9uPUdldENhbGxlcklkZW50aXR5JlZlcnNpb249MjAxMS0wNi0xNQ==";

        const GLOBAL_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=6fb20d31f734d876c5682fdd2678d194cf68b862755f83b7ba1373c0874be25c";
        const GLOBAL_URL_B64: &str = "aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8=";
        const GLOBAL_HEADERS_B64: &str = "eyJBdXRob3JpemF0aW9uIjpbIkFXUzQtSE1BQy1TSEEyNTYgQ3JlZGVudGlhbD1BS0lERVhBTVBMRS8yMDE1MDgzMC91cy1lYXN0LTEvc3RzL2F3czRfcmVxdWVzdCwgU2lnbmVkSGVhZGVycz1jb250ZW50LXR5cGU7aG9zdDt4LWFtei1kYXRlLCBTaWduYXR1cmU9NmZiMjBkMzFmNzM0ZDg3NmM1NjgyZmRkMjY3OGQxOTRjZjY4Yjg2Mjc1NWY4M2I3YmExMzczYzA4NzRiZTI1YyJdLCJDb250ZW50LVR5cGUiOlsiYXBwbGljYXRpb24veC13d3ctZm9ybS11cmxlbmNvZGVkOyBjaGFyc2V0PXV0Zi04Il0sIkhvc3QiOlsic3RzLmFtYXpvbmF3cy5jb20iXSwiWC1BbXotRGF0ZSI6WyIyMDE1MDgzMFQxMjM2MDBaIl19";

        const REGIONAL_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, Signature=20e9bc4c1258ebc50d0874dca609ebf9bf9046ec61aed772c3cedebea9d6d6b7";
        const REGIONAL_URL_B64: &str = "aHR0cHM6Ly9zdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20v";
        const REGIONAL_HEADERS_B64: &str = "eyJBdXRob3JpemF0aW9uIjpbIkFXUzQtSE1BQy1TSEEyNTYgQ3JlZGVudGlhbD1BS0lERVhBTVBMRS8yMDE1MDgzMC9ldS13ZXN0LTEvc3RzL2F3czRfcmVxdWVzdCwgU2lnbmVkSGVhZGVycz1jb250ZW50LXR5cGU7aG9zdDt4LWFtei1kYXRlO3gtYW16LXNlY3VyaXR5LXRva2VuO3gtdmF1bHQtYXdzLWlhbS1zZXJ2ZXItaWQsIFNpZ25hdHVyZT0yMGU5YmM0YzEyNThlYmM1MGQwODc0ZGNhNjA5ZWJmOWJmOTA0NmVjNjFhZWQ3NzJjM2NlZGViZWE5ZDZkNmI3Il0sIkNvbnRlbnQtVHlwZSI6WyJhcHBsaWNhdGlvbi94LXd3dy1mb3JtLXVybGVuY29kZWQ7IGNoYXJzZXQ9dXRmLTgiXSwiSG9zdCI6WyJzdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20iXSwiWC1BbXotRGF0ZSI6WyIyMDE1MDgzMFQxMjM2MDBaIl0sIlgtQW16LVNlY3VyaXR5LVRva2VuIjpbIklRb0piM0pwWjJsdVgyVmpFWEFNUExFU0VTU0lPTlRPS0VOIl0sIlgtVmF1bHQtQVdTLUlBTS1TZXJ2ZXItSUQiOlsidmF1bHQuZXhhbXBsZS5jb20iXX0=";

        fn now() -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(NOW_SECS)
        }

        fn field<'a>(body: &'a Value, name: &str) -> &'a str {
            body.get(name)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name} missing from {body}"))
        }

        fn authorization(body: &Value) -> String {
            let raw = B64.decode(field(body, "iam_request_headers")).unwrap();
            let headers: Value = serde_json::from_slice(&raw).unwrap();
            headers["Authorization"][0].as_str().unwrap().to_owned()
        }

        #[test]
        fn global_endpoint_login_matches_botocore() {
            let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
            let body =
                login_body("broker-lambda", &creds, &StsEndpoint::global(), None, now()).unwrap();
            assert_eq!(authorization(&body), GLOBAL_AUTHORIZATION);
            assert_eq!(field(&body, "role"), "broker-lambda");
            assert_eq!(field(&body, "iam_http_request_method"), "POST");
            assert_eq!(field(&body, "iam_request_url"), GLOBAL_URL_B64);
            assert_eq!(field(&body, "iam_request_body"), BODY_B64);
            assert_eq!(field(&body, "iam_request_headers"), GLOBAL_HEADERS_B64);
        }

        #[test]
        fn regional_endpoint_with_session_token_and_server_id_matches_botocore() {
            let creds = Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                Some(SESSION_TOKEN.into()),
                None,
                "test",
            );
            let endpoint = StsEndpoint::regional("eu-west-1").unwrap();
            let body = login_body(
                "broker-lambda",
                &creds,
                &endpoint,
                Some("vault.example.com"),
                now(),
            )
            .unwrap();
            assert_eq!(authorization(&body), REGIONAL_AUTHORIZATION);
            assert_eq!(field(&body, "iam_request_url"), REGIONAL_URL_B64);
            assert_eq!(field(&body, "iam_request_body"), BODY_B64);
            assert_eq!(field(&body, "iam_request_headers"), REGIONAL_HEADERS_B64);
        }

        #[test]
        fn regions_are_checked() {
            assert!(StsEndpoint::regional("eu-west-1").is_ok());
            for bad in ["", "EU", "eu-west-1.evil.com/", "a b"] {
                assert!(StsEndpoint::regional(bad).is_err(), "{bad:?}");
            }
        }

        #[tokio::test]
        async fn the_login_request_uses_the_mount_and_the_given_credentials() {
            let mut iam = AwsIam::new("broker-lambda")
                .with_credentials(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"));
            iam.mount = "aws-prod".into();
            let auth = super::super::VaultAuth::AwsIam(iam);
            auth.validate().unwrap();
            let req = auth.login_request().await.unwrap().unwrap();
            assert_eq!(req.path, "auth/aws-prod/login");
            assert_eq!(field(&req.body, "iam_request_url"), GLOBAL_URL_B64);
            let auth_header = authorization(&req.body);
            assert!(
                auth_header.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
                "{auth_header}"
            );
            assert!(!format!("{auth:?}").contains(SECRET_KEY));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_every_secret() {
        let auth = VaultAuth::approle(
            SecretString::from("role-1234-abcd"),
            SecretString::from("secret-5678-efgh"),
        );
        let text = format!("{auth:?}");
        assert!(text.contains("approle"), "{text}");
        assert!(!text.contains("1234") && !text.contains("5678"), "{text}");
        let token = VaultAuth::from(SecretString::from("s.tokentoken"));
        assert!(!format!("{token:?}").contains("tokentoken"));
    }

    #[test]
    fn mounts_and_empty_values_are_checked() {
        let mut auth = VaultAuth::approle(SecretString::from("r"), SecretString::from("s"));
        assert!(auth.validate().is_ok());
        if let VaultAuth::AppRole { mount, .. } = &mut auth {
            *mount = "../sys".into();
        }
        assert!(matches!(auth.validate(), Err(BinderError::Config(_))));
        let empty = VaultAuth::approle(SecretString::from(" "), SecretString::from("s"));
        assert!(matches!(empty.validate(), Err(BinderError::Config(_))));
        assert!(check_auth_mount("team-a/approle").is_ok());
        assert!(check_auth_mount("a//b").is_err());
        assert!(
            VaultAuth::from(SecretString::from("a\nb"))
                .validate()
                .is_err()
        );
    }

    #[tokio::test]
    async fn approle_logs_in_at_its_mount() {
        let auth = VaultAuth::AppRole {
            mount: "fleet-approle".into(),
            role_id: SecretString::from("rid"),
            secret_id: SecretString::from("sid"),
        };
        let req = auth.login_request().await.unwrap().unwrap();
        assert_eq!(req.path, "auth/fleet-approle/login");
        assert_eq!(req.body, json!({"role_id": "rid", "secret_id": "sid"}));
        assert!(
            VaultAuth::from(SecretString::from("t"))
                .login_request()
                .await
                .unwrap()
                .is_none()
        );
    }
}
