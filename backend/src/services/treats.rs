//! Treats: a user's count, and giving one to someone else's pet that is on screen — paid in
//! the database first (one conditional UPDATE, so it can never be spent twice), then fed
//! to the pet, and refunded if the pet is gone by then.

use super::Services;
use crate::actors::pet::Treat;
use crate::actors::presence::{ActiveOwner, TreatsChanged};
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
        let Some(left) = self
            .db(move |c| Ok(queries::spend_treat(c, user.0)?))
            .await?
        else {
            return Err(AppError::NoTreats);
        };
        let fed = match self.world.registry.get(pet) {
            Some(addr) => matches!(addr.send(Treat { by: user }).await, Ok(Ok(_))),
            None => false,
        };
        let mut available = u32::try_from(left).unwrap_or(0);
        if !fed {
            // The pet died after we paid: give the treat back.
            let max = self.world.rules.max_treats;
            if let Ok(Some(n)) = self
                .db(move |c| Ok(queries::refund_treat(c, user.0, max)?))
                .await
            {
                available = u32::try_from(n).unwrap_or(0);
            }
            self.presence.do_send(TreatsChanged { user, available });
            return Err(AppError::NotActive(
                "that pet is gone; your treat was returned",
            ));
        }
        self.presence.do_send(TreatsChanged { user, available });
        Ok(())
    }
}
