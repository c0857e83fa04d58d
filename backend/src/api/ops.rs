//! Routes for operators: liveness, readiness and Prometheus metrics.

use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "pets_alive": state.metrics().pets_alive.get(),
    }))
}

/// Readiness: whether this node serves its share of the pets. One node is ready once it
/// listens (it loaded every pet before that); a cluster node once it holds every shard the
/// placement gives it, with their pets started. A load balancer sends no one to a node that
/// is not ready (it answers 503).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let m = state.metrics();
    let (ready, node, nodes) = match &state.services.cluster {
        Some(c) => (c.ready(), c.cfg.node.clone(), c.node_count()),
        None => (true, String::new(), 1),
    };
    let body = serde_json::json!({
        "ready": ready,
        "node": node,
        "nodes": nodes,
        "owned_shards": m.owned_shards.get(),
        "pets_alive": m.pets_alive.get(),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics().render())
}
