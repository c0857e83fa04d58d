//! Treats: a user's count, and giving one to someone else's pet that is on screen — paid in
//! the database first (one conditional UPDATE, so it can never be spent twice), then fed
//! to the pet, and refunded if the pet is gone by then.

use super::Services;
use crate::actors::pet::Treat;
use crate::actors::presence::{ActiveOwner, TreatsChanged};
use crate::cluster::messages::Request;
use crate::db::queries;
use crate::error::AppError;
use livepet_shared::{PetId, UserId};

impl Services {
    /// How many treats the user holds.
    pub async fn treats_of(&self, user: UserId) -> Result<u32, AppError> {
        self.user(user).await.map(|u| u.available_treats)
    }

    /// Spends one of `user`'s treats on `pet`, which must be someone else's and on screen.
    /// Every session of the giver is told the new count, also after a refund.
    pub async fn give_treat(&self, user: UserId, pet: PetId) -> Result<(), AppError> {
        let owner = self
            .presence
            .send(ActiveOwner { pet })
            .await
            .map_err(|_| AppError::Internal("presence is unavailable".into()))?;
        match owner {
            None => return Err(AppError::NotActive("that pet is not on anyone's screen")),
            Some(o) if o == user => return Err(AppError::OwnPet),
            Some(_) => {}
        }
        let left = self.pay_treat(user).await?;
        let fed = match self.remote(pet) {
            Some(cluster) => cluster
                .request(&Request::Treat { pet, by: user })
                .await
                .is_ok(),
            None => match self.world.registry.get(pet) {
                Some(addr) => matches!(addr.send(Treat { by: user }).await, Ok(Ok(_))),
                None => false,
            },
        };
        if !fed {
            // The pet died after we paid: give the treat back.
            if let Err(e) = self.refund_treat(user).await {
                e.log_cause();
                log::error!("could not refund user {user}'s treat for pet {pet}: {e}");
                self.presence.do_send(TreatsChanged {
                    user,
                    available: left,
                    elsewhere: false,
                });
            }
            return Err(AppError::NotActive(
                "that pet is gone; your treat was returned",
            ));
        }
        self.presence.do_send(TreatsChanged {
            user,
            available: left,
            elsewhere: false,
        });
        Ok(())
    }

    /// Takes one treat from `user`, committed on return; returns how many are left.
    pub async fn pay_treat(&self, user: UserId) -> Result<u32, AppError> {
        match self
            .db(move |c| Ok(queries::spend_treat(c, user.0)?))
            .await?
        {
            Some(left) => Ok(u32::try_from(left).unwrap_or(0)),
            None => Err(AppError::NoTreats),
        }
    }

    /// Gives `user` back a treat that was paid for but not eaten, committed on return, and
    /// tells every session of the user the count now stored.
    pub async fn refund_treat(&self, user: UserId) -> Result<u32, AppError> {
        let max = self.world.rules.max_treats;
        let stored = self
            .db(move |c| Ok(queries::refund_treat(c, user.0, max)?))
            .await?;
        let Some(available) = stored else {
            return Err(AppError::NotFound("that user no longer exists"));
        };
        let available = u32::try_from(available).unwrap_or(0);
        self.presence.do_send(TreatsChanged {
            user,
            available,
            elsewhere: false,
        });
        Ok(available)
    }
}
