//! The agent registry of seed 002, in memory: `POST /agents {"agent_card": {…}}` registers
//! (201, `{"agent_id"}`), `GET /agents/{id}`, `DELETE /agents/{id}`, `GET /agents` lists,
//! `POST /agents/search {"query": "…"}` finds cards whose name, description or skills contain
//! the query (case-insensitive), `GET /health`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{body, fresh_id, json as json_reply, Body};

/// The registry.
#[derive(Default)]
pub struct Registry {
    // A reference target, not the router: one lock, held for a map operation only.
    agents: RwLock<BTreeMap<String, Value>>,
}

fn matches(card: &Value, query: &str) -> bool {
    let q = query.to_lowercase();
    let has = |v: &Value| v.as_str().is_some_and(|s| s.to_lowercase().contains(&q));
    has(&card["name"])
        || has(&card["description"])
        || card["skills"].as_array().is_some_and(|skills| {
            skills.iter().any(|s| {
                has(&s["name"])
                    || has(&s["description"])
                    || s["tags"].as_array().is_some_and(|t| t.iter().any(has))
            })
        })
}

fn entry(id: &str, card: &Value) -> Value {
    json!({"agent_id": id, "agent_card": card})
}

impl Registry {
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_string();
        let error =
            |status: StatusCode, detail: &str| json_reply(status, &json!({"detail": detail}));
        match (method, path.as_str()) {
            (Method::GET, "/health") => {
                let n = self.agents.read().map_or(0, |a| a.len());
                json_reply(StatusCode::OK, &json!({"status": "healthy", "agents": n}))
            }
            (Method::GET, "/agents") => {
                let list: Vec<Value> = self
                    .agents
                    .read()
                    .map(|a| a.iter().map(|(id, c)| entry(id, c)).collect())
                    .unwrap_or_default();
                json_reply(StatusCode::OK, &json!({"count": list.len(), "agents": list}))
            }
            (Method::POST, "/agents") => {
                let card = match body(req).await {
                    Ok((_, b)) => serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|v| v.get("agent_card").cloned()),
                    Err(r) => return r,
                };
                match card.filter(|c| c["name"].is_string()) {
                    Some(card) => {
                        let id = fresh_id("agent");
                        if let Ok(mut a) = self.agents.write() {
                            a.insert(id.clone(), card);
                        }
                        json_reply(StatusCode::CREATED, &json!({"agent_id": id}))
                    }
                    None => error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "expected {\"agent_card\": {\"name\": …}}",
                    ),
                }
            }
            (Method::POST, "/agents/search") => {
                let query = match body(req).await {
                    Ok((_, b)) => serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|v| v["query"].as_str().map(str::to_string)),
                    Err(r) => return r,
                };
                let Some(query) = query else {
                    return error(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"query\": \"…\"}");
                };
                let found: Vec<Value> = self
                    .agents
                    .read()
                    .map(|a| {
                        a.iter()
                            .filter(|(_, c)| matches(c, &query))
                            .map(|(id, c)| entry(id, c))
                            .collect()
                    })
                    .unwrap_or_default();
                json_reply(StatusCode::OK, &json!({"count": found.len(), "agents": found}))
            }
            (m, p) if p.starts_with("/agents/") => {
                let id = &p["/agents/".len()..];
                match m {
                    Method::GET => match self.agents.read().ok().and_then(|a| a.get(id).cloned()) {
                        Some(card) => json_reply(StatusCode::OK, &entry(id, &card)),
                        None => error(StatusCode::NOT_FOUND, "no such agent"),
                    },
                    Method::DELETE => match self.agents.write().ok().and_then(|mut a| a.remove(id))
                    {
                        Some(_) => json_reply(StatusCode::OK, &json!({"deleted": id})),
                        None => error(StatusCode::NOT_FOUND, "no such agent"),
                    },
                    _ => error(StatusCode::METHOD_NOT_ALLOWED, "GET or DELETE"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "see /health, /agents, /agents/{id}, /agents/search"),
        }
    }
}
