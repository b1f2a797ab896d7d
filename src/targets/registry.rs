//! The agent registry of seed 002, in memory: `POST /agents {"agent_card": {…}}` registers
//! (201, `{"agent_id"}`), `GET /agents/{id}`, `DELETE /agents/{id}`, `GET /agents` lists,
//! `POST /agents/search {"query": "…"}` finds cards whose name, description or skills contain
//! the query (case-insensitive), `GET /health`.
//!
//! Each agent is kept as it will be answered: its entry (`{"agent_id", "agent_card"}`)
//! serialized once at registration, and the texts a search looks in, lowercased once. A read
//! copies bytes under the lock; it neither clones a card nor serializes one.

use std::collections::BTreeMap;
use std::sync::RwLock;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{body, fresh_id, json as json_reply, reply, Body};

/// The registry.
#[derive(Default)]
pub struct Registry {
    // A reference target, not the router: one lock, held for a map operation only.
    agents: RwLock<BTreeMap<String, Agent>>,
}

/// One registered agent.
struct Agent {
    /// `{"agent_id": …, "agent_card": …}`, as every read answers it.
    entry: String,
    /// The card's name, description, and its skills' names, descriptions and tags, lowercased.
    texts: Vec<String>,
}

impl Agent {
    fn new(id: &str, card: &Value) -> Agent {
        let mut texts = Vec::new();
        let mut add = |v: &Value| {
            if let Some(s) = v.as_str() {
                texts.push(s.to_lowercase());
            }
        };
        add(&card["name"]);
        add(&card["description"]);
        for skill in card["skills"].as_array().into_iter().flatten() {
            add(&skill["name"]);
            add(&skill["description"]);
            skill["tags"].as_array().into_iter().flatten().for_each(&mut add);
        }
        // Written out rather than through `json!`, which would copy the card first.
        let mut entry = String::from(r#"{"agent_id":"#);
        entry.push_str(&serde_json::to_string(id).unwrap_or_default());
        entry.push_str(r#","agent_card":"#);
        entry.push_str(&card.to_string());
        entry.push('}');
        Agent { entry, texts }
    }

    /// Whether one of its texts contains `query`, already lowercased.
    fn matches(&self, query: &str) -> bool {
        self.texts.iter().any(|t| t.contains(query))
    }
}

/// `{"agents": [entries], "count": n}`.
fn list<'a>(entries: impl Iterator<Item = &'a Agent>) -> Response<Body> {
    reply(StatusCode::OK, "application/json", list_body(entries))
}

fn list_body<'a>(entries: impl Iterator<Item = &'a Agent>) -> String {
    let mut out = String::from(r#"{"agents":["#);
    let mut n = 0usize;
    for a in entries {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&a.entry);
        n += 1;
    }
    out.push_str(&format!(r#"],"count":{n}}}"#));
    out
}

impl Registry {
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_string();
        let error =
            |status: StatusCode, detail: &str| json_reply(status, &json!({"detail": detail}));
        let locked = || error(StatusCode::INTERNAL_SERVER_ERROR, "the registry's lock is poisoned");
        match (method, path.as_str()) {
            (Method::GET, "/health") => {
                let n = self.agents.read().map_or(0, |a| a.len());
                json_reply(StatusCode::OK, &json!({"status": "healthy", "agents": n}))
            }
            (Method::GET, "/agents") => match self.agents.read() {
                Ok(a) => list(a.values()),
                Err(_) => locked(),
            },
            (Method::POST, "/agents") => {
                let card = match body(req).await {
                    Ok((_, b)) => serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|mut v| v.get_mut("agent_card").map(Value::take)),
                    Err(r) => return r,
                };
                match card.filter(|c| c["name"].is_string()) {
                    Some(card) => {
                        let id = fresh_id("agent");
                        let agent = Agent::new(&id, &card);
                        match self.agents.write() {
                            Ok(mut a) => {
                                a.insert(id.clone(), agent);
                                json_reply(StatusCode::CREATED, &json!({"agent_id": id}))
                            }
                            Err(_) => locked(),
                        }
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
                        .and_then(|v| v["query"].as_str().map(str::to_lowercase)),
                    Err(r) => return r,
                };
                let Some(query) = query else {
                    return error(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"query\": \"…\"}");
                };
                match self.agents.read() {
                    Ok(a) => list(a.values().filter(|a| a.matches(&query))),
                    Err(_) => locked(),
                }
            }
            (m, p) if p.starts_with("/agents/") => {
                let id = &p["/agents/".len()..];
                match m {
                    Method::GET => {
                        match self
                            .agents
                            .read()
                            .ok()
                            .and_then(|a| a.get(id).map(|a| a.entry.clone()))
                        {
                            Some(entry) => reply(StatusCode::OK, "application/json", entry),
                            None => error(StatusCode::NOT_FOUND, "no such agent"),
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Value {
        json!({"name": "Weather Bot", "description": "Forecasts", "skills": [
            {"name": "Rain", "description": "Says if it RAINS", "tags": ["Sky-7", "wet"]},
            {"name": "Sun"}
        ]})
    }

    #[test]
    fn a_search_finds_any_text_a_card_names_whatever_its_case() {
        let a = Agent::new("agent-1", &card());
        for q in ["weather", "bot", "forecasts", "rain", "it rains", "sky-7", "wet", "sun", ""] {
            assert!(a.matches(q), "{q}");
        }
        // Across two texts, or in a field a search does not read: no match.
        for q in ["bot\nforecasts", "botforecasts", "agent-1", "skills", "sky-8"] {
            assert!(!a.matches(q), "{q}");
        }
    }

    #[test]
    fn an_entry_is_the_id_and_the_card_as_registered() {
        let a = Agent::new("agent-1", &card());
        let v: Value = serde_json::from_str(&a.entry).unwrap();
        assert_eq!(v, json!({"agent_id": "agent-1", "agent_card": card()}));
        let b = Agent::new("agent-2", &json!({"name": "b"}));
        let v: Value = serde_json::from_str(&list_body([&a, &b].into_iter())).unwrap();
        let entry = |id, card| json!({"agent_id": id, "agent_card": card});
        let want = json!({"count": 2, "agents": [entry("agent-1", card()), entry("agent-2", json!({"name": "b"}))]});
        assert_eq!(v, want);
        let v: Value = serde_json::from_str(&list_body(std::iter::empty())).unwrap();
        assert_eq!(v, json!({"count": 0, "agents": []}));
        let none = Agent::new("x", &json!({"name": "x"}));
        assert!(none.texts == ["x"] && none.matches("x"));
    }
}
