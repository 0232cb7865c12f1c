//! The collector's JSON API over HTTP: the base URL, the token, and answers read as JSON or
//! refused with the collector's error.

use anyhow::{bail, Context};
use serde_json::Value;

pub(crate) struct Api {
    client: reqwest::blocking::Client,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
}

impl Api {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        let client = tda_daemon::tls::blocking_client_builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: None,
        })
    }

    /// The same API sending an admin token (`--token` or `TDA_ADMIN_TOKEN`).
    pub(crate) fn reading_with(mut self, token: Option<&str>) -> Api {
        self.token = token.map(String::from);
        self
    }

    pub(crate) fn with_token(&self, token: Option<&str>) -> anyhow::Result<Api> {
        let Some(t) = token else {
            bail!("this command needs the admin token: --token or TDA_ADMIN_TOKEN");
        };
        Ok(Api {
            client: self.client.clone(),
            base: self.base.clone(),
            token: Some(t.to_string()),
        })
    }

    pub(crate) fn authorized(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub(crate) fn text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .with_context(|| format!("cannot reach the collector at {}", self.base))?;
        if !resp.status().is_success() {
            return answer(resp).map(|_| String::new());
        }
        Ok(resp.text()?)
    }

    pub(crate) fn post_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let req = self.authorized(
            self.client
                .post(format!("{}{path}", self.base))
                .query(query),
        );
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.delete(format!("{}{path}", self.base)));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    pub(crate) fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.get(format!("{}{path}", self.base)).query(query));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self.authorized(self.client.post(format!("{}{path}", self.base)).json(body));
        answer(
            req.send()
                .with_context(|| format!("cannot reach the collector at {}", self.base))?,
        )
    }
}

fn answer(resp: reqwest::blocking::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{}: {}",
            status.as_u16(),
            v["error"].as_str().unwrap_or("request failed")
        );
    }
    Ok(v)
}
