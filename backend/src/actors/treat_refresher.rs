//! TreatRefresher: tops every user up to the treat maximum at start and every refresh interval.
//! In cluster mode every node runs one, but only the node whose turn it is (the holder of
//! shard 0's lease) does the top-up, so users are topped up once per interval, not once per
//! node.

use crate::actors::presence::{Presence, TreatsRefreshed};
use crate::db::{self, queries, DbPool};
use actix::prelude::*;
use std::time::Duration;

pub struct TreatRefresher {
    pool: DbPool,
    every: Duration,
    max_treats: u32,
    presence: Addr<Presence>,
    /// Cluster mode: whether this node does the top-up now (and how long to wait before the
    /// first one, for the leases to settle).
    turn: Option<(Turn, Duration)>,
}

/// Whether this node's refresher does the top-up (cluster mode).
pub type Turn = Box<dyn Fn() -> bool>;

impl TreatRefresher {
    pub fn new(pool: DbPool, every: Duration, max_treats: u32, presence: Addr<Presence>) -> Self {
        TreatRefresher {
            pool,
            every,
            max_treats,
            presence,
            turn: None,
        }
    }

    /// Cluster mode: top up only when `turn` says so, the first time after `first_after`.
    pub fn taking_turns(mut self, turn: Turn, first_after: Duration) -> Self {
        self.turn = Some((turn, first_after));
        self
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if let Some((turn, _)) = &self.turn {
            if !turn() {
                return;
            }
        }
        let pool = self.pool.clone();
        let max = self.max_treats;
        let presence = self.presence.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            let topped_up = db::run(&pool, move |c| -> anyhow::Result<usize> {
                Ok(queries::refresh_treats(c, max)?)
            });
            match topped_up.await {
                Ok(n) => {
                    log::info!("topped up treats for {n} user(s)");
                    if n > 0 {
                        // Every user now holds the maximum: every open session shows it.
                        presence.do_send(TreatsRefreshed {
                            available: max,
                            elsewhere: false,
                        });
                    }
                }
                Err(e) => log::warn!("treat refresh failed, will retry next round: {e:#}"),
            }
        }));
    }
}

impl Actor for TreatRefresher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match &self.turn {
            Some((_, first_after)) => {
                ctx.run_later(*first_after, |act, ctx| act.refresh(ctx));
            }
            None => self.refresh(ctx),
        }
        ctx.run_interval(self.every, |act, ctx| act.refresh(ctx));
    }
}
