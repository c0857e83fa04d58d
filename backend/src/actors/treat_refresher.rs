//! TreatRefresher: tops every user up to the treat maximum at start and every refresh interval.

use crate::actors::presence::{Presence, TreatsRefreshed};
use crate::db::{self, queries, DbPool};
use actix::prelude::*;
use std::time::Duration;

pub struct TreatRefresher {
    pool: DbPool,
    every: Duration,
    max_treats: u32,
    presence: Addr<Presence>,
}

impl TreatRefresher {
    pub fn new(pool: DbPool, every: Duration, max_treats: u32, presence: Addr<Presence>) -> Self {
        TreatRefresher {
            pool,
            every,
            max_treats,
            presence,
        }
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
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
                        presence.do_send(TreatsRefreshed { available: max });
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
        self.refresh(ctx);
        ctx.run_interval(self.every, |act, ctx| act.refresh(ctx));
    }
}
