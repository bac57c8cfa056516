//! The operator HTTP API as the simulator uses it: log in, manage units, create incidents,
//! ask for recommendations and assign. A session cookie is kept and renewed when it expires.

use anyhow::Context;
use field_client::http::{error_chain, https_client, ApiError};
use field_client::Trust;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A logged-in operator session over the pinned TLS.
pub struct Operator {
    http: reqwest::Client,
    base: Url,
    username: String,
    password: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Unit {
    pub id: i64,
    pub call_sign: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewIncident<'a> {
    pub kind: &'a str,
    pub priority: u8,
    pub lat: f64,
    pub lon: f64,
    pub notes: &'a str,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Candidate {
    pub unit_id: i64,
    pub call_sign: String,
    #[serde(default)]
    pub distance_m: Option<f64>,
    #[serde(default)]
    pub eta_s: Option<f64>,
    #[serde(default)]
    pub eta_source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Recommendations {
    candidates: Vec<Candidate>,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct EnrolmentCode {
    code: String,
}

impl Operator {
    /// Logs in to `server` (`https://host:port`).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the login.
    pub async fn login(
        server: &str,
        trust: &Trust,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(server).with_context(|| format!("server URL {server:?}"))?;
        anyhow::ensure!(
            base.scheme() == "https",
            "server URL must be https://HOST:PORT"
        );
        let operator = Self {
            http: https_client(trust, true)?,
            base,
            username: username.to_owned(),
            password: password.to_owned(),
        };
        operator.log_in().await?;
        Ok(operator)
    }

    async fn log_in(&self) -> anyhow::Result<()> {
        let body = json!({"username": self.username, "password": self.password});
        let response = self.send(Method::POST, "/api/login", Some(&body)).await?;
        if !response.status().is_success() {
            let error = ApiError::from_response(response).await;
            anyhow::bail!("login as {:?} failed: {error}", self.username);
        }
        tracing::info!(user = %self.username, "logged in to {}", self.base);
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.base.join(path)?;
        let mut request = self.http.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", error_chain(&e)))
    }

    /// One JSON call; logs in again once if the session has expired.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let mut response = self.send(method.clone(), path, body.as_ref()).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            tracing::info!("operator session expired; logging in again");
            self.log_in().await?;
            response = self.send(method, path, body.as_ref()).await?;
        }
        if !response.status().is_success() {
            return Err(ApiError::from_response(response).await.into());
        }
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer to {path}"))
    }

    pub async fn units(&self) -> anyhow::Result<Vec<Unit>> {
        self.call(Method::GET, "/api/units", None).await
    }

    /// Creates a patrol car unit; `Ok(None)` when the call sign already exists.
    pub async fn create_unit(&self, call_sign: &str) -> anyhow::Result<Option<Unit>> {
        let body = json!({
            "call_sign": call_sign,
            "kind": "patrol_car",
            "capabilities": ["patrol"],
            "home_station": "Helsinki Central",
        });
        match self.call(Method::POST, "/api/units", Some(body)).await {
            Ok(unit) => Ok(Some(unit)),
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|a| a.status == 409) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn enrolment_code(&self, unit_id: i64) -> anyhow::Result<String> {
        let path = format!("/api/units/{unit_id}/enrolment-code");
        let answer: EnrolmentCode = self.call(Method::POST, &path, None).await?;
        Ok(answer.code)
    }

    pub async fn create_incident(&self, incident: &NewIncident<'_>) -> anyhow::Result<i64> {
        let created: Created = self
            .call(
                Method::POST,
                "/api/incidents",
                Some(serde_json::to_value(incident)?),
            )
            .await?;
        Ok(created.id)
    }

    pub async fn recommendations(&self, incident_id: i64) -> anyhow::Result<Vec<Candidate>> {
        let path = format!("/api/incidents/{incident_id}/recommendations?count=3");
        let answer: Recommendations = self.call(Method::GET, &path, None).await?;
        Ok(answer.candidates)
    }

    /// Assigns a unit; returns the assignment id.
    pub async fn assign(&self, incident_id: i64, unit_id: i64) -> anyhow::Result<i64> {
        let path = format!("/api/incidents/{incident_id}/assignments");
        let created: Created = self
            .call(Method::POST, &path, Some(json!({"unit_id": unit_id})))
            .await?;
        Ok(created.id)
    }
}
